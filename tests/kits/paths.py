"""Where the checkout is, whichever directory the tests were started from."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
