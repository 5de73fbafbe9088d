"""clp_alpm/plainjson.py reads and writes exactly what json does, errors included: the hooks
and every other command read the same state and manifests, one with it, one with json."""

from __future__ import annotations

import json
import math
import random

import pytest

from clp_alpm import plainjson

DOCUMENTS = [
    '{"a": 1}', ' [1, 2.5, -3e5, "x\\u00e9", null, true, false] \n', "\t{}\r\n", '"text"',
    '{"b": 1, "a": [{}], "b": 2}', "123456789012345678901234567890", "-0", "1E400",
    "[NaN, Infinity, -Infinity]", '"\\ud800"', '"caf\u00e9 \u2028"',
    # what json refuses, each with its own message
    "", " ", '{"a":', "[1] x", "[1,]", "01", '{"a" 1}', "\ufeff[1]", '{"a": "\x01"}', "nul",
    "[" * 100_000, '"\\x"', "{'a': 1}", "[1e]", "\x00",
]  # fmt: skip


def outcome(call, *args, **kwargs) -> tuple[str, ...]:
    try:
        value = call(*args, **kwargs)
    except (ValueError, TypeError, RecursionError) as err:
        return ("error", type(err).__name__, str(err))
    return ("value", repr(value))


@pytest.mark.parametrize("text", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_a_document_reads_as_json_reads_it(text):
    documents = [text, text.encode("utf-8", "surrogatepass"), text.encode("utf-16"),
                 text.encode("utf-32-le", "surrogatepass"), bytearray(text.encode())]  # fmt: skip
    for document in documents:
        assert outcome(plainjson.loads, document) == outcome(json.loads, document)


def test_random_documents_read_as_json_reads_them():
    rng = random.Random(13)
    alphabet = '{}[]",:0123456789.eE+- \n\ttrufalsn\\u00e9a'
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert outcome(plainjson.loads, text) == outcome(json.loads, text), repr(text)


def test_a_value_is_written_as_json_writes_it():
    loop: list[object] = []
    loop.append(loop)
    values = [{"b": 1, "a": [1.5, None, True, "\u00e9\n\x7f"]}, "x\u2028", math.nan, 10**30,
              [1, {2: 3, None: 4}], {"k": object()}, {(1,): 2}, loop, -0.0, [math.inf]]  # fmt: skip
    for value in values:
        for options in ({}, {"sort_keys": True}, {"separators": (",", ":")}):
            assert outcome(plainjson.dumps, value, **options) == outcome(
                json.dumps, value, **options
            )


def test_without_the_c_module_json_does_the_work(monkeypatch):
    monkeypatch.setattr(plainjson, "_json", None)
    assert plainjson.loads(b' {"a": [1, 2.5]} ') == {"a": [1, 2.5]}
    assert plainjson.dumps({"b": 1, "a": None}, sort_keys=True) == '{"a": null, "b": 1}'
    with pytest.raises(json.JSONDecodeError, match="Extra data"):
        plainjson.loads("[1] 2")


def test_a_c_module_called_differently_leaves_the_work_to_json(monkeypatch):
    """A Python whose `_json` takes other arguments: json, which knows how to call it."""
    import _json

    def changed(*args):
        raise TypeError("make_encoder() takes other arguments")

    stub = type(_json)("_json")
    stub.make_encoder = stub.make_scanner = changed  # type: ignore[attr-defined]
    stub.encode_basestring_ascii = _json.encode_basestring_ascii  # type: ignore[attr-defined]
    monkeypatch.setattr(plainjson, "_json", stub)
    monkeypatch.setattr(plainjson, "_made", [])
    assert plainjson.dumps([1, {"b": None}], separators=(",", ":")) == '[1,{"b":null}]'
    assert plainjson.loads(b'{"a": [true]}') == {"a": [True]}
