"""The completion index: the names a shell completes, readable by every user.

The state directory is 0700 (its snapshots hold copies of files such as /etc/shadow), so the
shell completions, which run as the user typing, cannot read it. clp therefore keeps a tiny
index beside it, mode 0644 in a 0755 directory, rewritten (all or nothing) by every writing
clp command and by the post-transaction hook. It holds names and numbers only, one `KIND NAME
STATE` a line:

    patch CLPR261125 applied
    revert R1 applied
    transaction 41 done

Transactions are the newest INDEXED_TRANSACTIONS (HistoryLimit's default): the post hook
rewrites the index on every pacman transaction, and its cost must not grow with the history.
Nothing else is in it: no paths, no versions, nothing from a snapshot. A root without the
index's parent directory (/var/cache) gets no index. A name with a character
outside INDEX_CHARACTERS is left out, so that a shell never reads anything but a plain word.
"""

from __future__ import annotations

import os

from clp_alpm.atomicfile import write_atomically
from clp_alpm.paths import is_dir
from clp_alpm.store.state import StateDB

HEADER = (
    "# clp completion index: patch IDs, revert IDs and transaction numbers, for the shell\n"
    "# completions. Rewritten by clp; see clp(8).\n"
)
INDEXED_TRANSACTIONS = 100
INDEX_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+@-")


def render_index(state: StateDB) -> str:
    """The index text for what `state` holds now."""
    lines = [
        f"{kind} {name} {status}"
        for kind, name, status in state.completion_names(INDEXED_TRANSACTIONS)
        if _plain(name) and _plain(status)
    ]
    return HEADER + "".join(line + "\n" for line in lines)


def write_index(state: StateDB, target: str) -> bool:
    """Rewrite `target` when what it should say changed; True if it was written."""
    text = render_index(state)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # a link: replaced
        with os.fdopen(fd, "rb") as current:
            if current.read(len(text.encode()) + 1).decode("utf-8") == text:
                return False
    except (OSError, UnicodeDecodeError):
        pass  # absent, a link or unreadable: written anew
    parent = os.path.dirname(target)
    if not is_dir(parent):
        if not os.path.lexists(os.path.dirname(parent)):
            return False  # a root without /var/cache (a bare chroot): no index
        os.mkdir(parent, 0o755)
        os.chmod(parent, 0o755)  # whatever the umask: the users' shells read it
    # a cache the next writing command or transaction writes again: not worth three syncs
    # of every transaction (a shell completes nothing from an index a crash emptied)
    write_atomically(target, text.encode(), mode=0o644, durable=False)
    return True


def _plain(word: str) -> bool:
    return bool(word) and word[0] != "-" and set(word) <= INDEX_CHARACTERS
