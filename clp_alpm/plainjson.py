"""`dumps` and `loads` as `json.dumps` and `json.loads`, for the modules on the pacman hook's path.

json's Python modules compile regular expressions as they load, which imports `re` and `enum`:
about 5 ms of each hook's start, paid by every pacman transaction twice. The C encoder and
scanner that do json's work need neither, and are called here as json calls them. Whatever
this does not take itself — an error of any kind, bytes that are not plain ASCII, a Python
without the C module or with one that is called differently — goes to json, so that the two
never read a document differently and every error is json's own. One difference is left: the
C code runs two Python calls less deep than under json, so a document nested to within two
levels of the recursion limit (about a thousand) reads here and not there; clp's records nest
a few levels. Every reader of clp's state and snapshot manifests uses this module.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _c_part() -> Any:
    try:
        import _json
    except ImportError:  # a Python built without it: json's own pure-Python code
        return None
    return _json


_json = _c_part()

_WHITESPACE = " \t\n\r"  # what JSON allows around a document
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


def dumps(
    value: object, *, sort_keys: bool = False, separators: tuple[str, str] = (", ", ": ")
) -> str:
    """`json.dumps(value, sort_keys=sort_keys, separators=separators)`: ASCII, NaN allowed."""
    if _json is None:
        return _json_dumps(value, sort_keys, separators)
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value))
    item_separator, key_separator = separators
    try:
        encode = _json.make_encoder(
            {},  # markers: json's check for circular references
            _not_serializable,
            _json.encode_basestring_ascii,
            None,  # indent
            key_separator,
            item_separator,
            sort_keys,
            False,  # skipkeys
            True,  # allow_nan
        )
        return "".join(encode(value, 0))
    except Exception:  # noqa: BLE001 - json says what is wrong, or does it its own way
        return _json_dumps(value, sort_keys, separators)


def loads(document: str | bytes) -> Any:
    """`json.loads(document)`."""
    text = _plain_text(document)
    if _json is None or text is None:
        return _json_loads(document)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scanner()(text, start)
    except Exception:  # noqa: BLE001 - json says what is wrong, or does it its own way
        return _json_loads(document)
    if text[end:].strip(_WHITESPACE):
        return _json_loads(document)  # extra data: json's error
    return value


def _plain_text(document: str | bytes) -> str | None:
    """The text of `document` where json would read exactly it: a str, or bytes that are
    ASCII without NUL (json tells UTF-16 and UTF-32 apart by their NULs)."""
    if isinstance(document, str):
        return document
    if isinstance(document, (bytes, bytearray)) and document.isascii() and b"\0" not in document:
        return document.decode("ascii")
    return None


class _Context:
    """The settings json.JSONDecoder gives its C scanner, as json.loads makes it."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_made: list[Callable[[str, int], tuple[Any, int]]] = []


def _scanner() -> Callable[[str, int], tuple[Any, int]]:
    if not _made:
        assert _json is not None
        _made.append(_json.make_scanner(_Context()))
    return _made[0]


def _not_serializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_dumps(value: object, sort_keys: bool, separators: tuple[str, str]) -> str:
    import json

    return json.dumps(value, sort_keys=sort_keys, separators=separators)


def _json_loads(document: str | bytes) -> Any:
    import json

    return json.loads(document)
