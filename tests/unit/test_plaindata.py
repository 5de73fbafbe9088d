"""plaindata: the light dataclass and StrEnum of the hook's path behave as the real ones do
where clp uses them (the records are stored, compared, printed and rebuilt through them)."""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import pickle
import sqlite3

import pytest

from clp_alpm import plaindata
from clp_alpm.store.records import Health, TransactionRecord, TransactionStatus


class Light(plaindata.StrEnum):
    ONE = "one"
    TWO_WORDS = "two-words"


class Real(enum.StrEnum):
    ONE = "one"
    TWO_WORDS = "two-words"


@pytest.mark.parametrize("kind", [Light, Real])
def test_a_member_is_its_string_everywhere_clp_puts_it(kind) -> None:
    member = kind.TWO_WORDS
    assert member == "two-words" and isinstance(member, str) and hash(member) == hash("two-words")
    assert (str(member), f"{member}", member.value, member.name) == (
        "two-words", "two-words", "two-words", "TWO_WORDS")  # fmt: skip
    assert json.dumps({"state": member}) == '{"state": "two-words"}'
    assert sqlite3.connect(":memory:").execute("SELECT ?", (member,)).fetchone() == ("two-words",)
    assert kind("two-words") is member
    assert pickle.loads(pickle.dumps(member)) is member and copy.deepcopy(member) is member


@pytest.mark.parametrize("kind", [Light, Real])
@pytest.mark.parametrize("value", ["three", "ONE", "", None, 1])
def test_any_other_value_is_a_value_error(kind, value) -> None:
    with pytest.raises(ValueError):
        kind(value)


def test_members_of_different_classes_stay_apart() -> None:
    assert TransactionStatus("done") is TransactionStatus.DONE
    assert repr(Health.GOOD) == "<Health.GOOD: 'good'>"
    with pytest.raises(ValueError, match="not a valid TransactionStatus"):
        TransactionStatus("good")


def test_a_class_compiles_its_init_once_on_first_use() -> None:
    @plaindata.dataclass(frozen=True)
    class Point:
        x: int
        y: int = 2

    lazy = Point.__dict__["__init__"]
    first = Point(1)
    assert Point.__dict__["__init__"] is not lazy  # the compiled one took its place
    assert (first, Point(1, y=3)) == (Point(x=1, y=2), Point(1, 3))
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]


def test_a_subclass_made_before_first_use_inherits_a_working_init() -> None:
    @plaindata.dataclass
    class Base:
        a: int

    class Plain(Base):
        pass

    assert Plain(5).a == 5 and Base(6).a == 6


def test_replace_works_on_a_record() -> None:
    record = TransactionRecord(id=1, status=TransactionStatus.OPEN, started=1.0,
                               origin="pacman", packages=(), paths=())  # type: ignore[arg-type]  # fmt: skip
    done = dataclasses.replace(record, status=TransactionStatus.DONE)
    assert (done.status, done.id, record.status) == ("done", 1, "open")
