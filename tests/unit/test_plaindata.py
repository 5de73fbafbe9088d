"""clp_alpm/plaindata.py: the light dataclass (its fields filled in by a loop for the first
instances, then by an __init__ compiled for the class) and the light StrEnum of the records,
which behave as `dataclasses` and `enum.StrEnum` do where clp uses them."""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import pickle
import sqlite3

import pytest

from clp_alpm import plaindata
from clp_alpm.store.records import Health, PatchState, TransactionRecord, TransactionStatus


@plaindata.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: list[str] = plaindata.field(default_factory=list)


@plaindata.dataclass
class Counted:
    n: int
    double: int = plaindata.field(default=0, init=False)

    def __post_init__(self) -> None:
        self.double = 2 * self.n


class Labelled(Point):  # not a dataclass itself: inherits Point's __init__
    pass


def test_the_first_instances_are_filled_in_and_then_init_is_compiled():
    stand_in = Point.__dict__["__init__"]
    first = Point(1, y=2)
    assert Point.__dict__["__init__"] is stand_in  # no compiling for a few instances
    assert (first.x, first.y, first.tags) == (1, 2, [])
    assert Point(3) == Point(3, 0, []) and Point(3).tags is not Point(3).tags
    assert Counted(4).double == 8
    assert Labelled(5).x == 5 and type(Labelled(5)) is Labelled
    assert plaindata.replace(first, y=7) == Point(1, 7)
    assert dataclasses.replace(first, x=9) == Point(9, 2)
    many = [Point(n) for n in range(plaindata.COMPILE_AFTER)]
    assert Point.__dict__["__init__"] is not stand_in
    assert [p.x for p in many] == list(range(plaindata.COMPILE_AFTER)) and many[-1].tags == []


def _shape_class() -> type:
    @plaindata.dataclass(frozen=True)
    class Shape:
        a: int
        b: str = "x"
        c: list[int] = plaindata.field(default_factory=list)
        d: int = plaindata.field(default=5, init=False)
        e: int = plaindata.field(init=False, default_factory=lambda: 7)
        f: int = plaindata.field(init=False)

        def __post_init__(self) -> None:
            object.__setattr__(self, "f", self.a + self.d)

    return Shape


CALLS = [((1,), {}), ((1, "y"), {}), ((1, "y", [2]), {}), ((), {"a": 1, "c": [3]}),
         ((1,), {"b": "z"}), ((1,), {"c": plaindata.MISSING}), ((), {}), ((1, "y", [], 4), {}),
         ((1,), {"a": 2}), ((1,), {"d": 2}), ((1,), {"nope": 1}), ((), {"b": "y"})]  # fmt: skip


def _made(cls: type, args: tuple, kwargs: dict) -> tuple:
    try:
        obj = cls(*args, **kwargs)
    except TypeError as err:
        return ("error", str(err))
    return ("made", obj.__dict__, list(obj.__dict__))


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_the_filled_in_and_the_compiled_init_make_the_same(monkeypatch, args, kwargs):
    filled = _made(_shape_class(), args, kwargs)
    monkeypatch.setattr(plaindata, "COMPILE_AFTER", 0)
    compiled = _made(_shape_class(), args, kwargs)
    assert filled == compiled
    assert ("Shape.__init__()" in filled[1]) if filled[0] == "error" else filled[1]["f"] == 6


def test_a_bad_call_is_the_type_error_it_always_was():
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, [], 4)  # type: ignore[call-arg]
    with pytest.raises(plaindata.FrozenInstanceError):
        Point(1).x = 2  # type: ignore[misc]


class Real(enum.StrEnum):
    APPLIED = "applied"
    ROLLED_BACK = "rolled-back"


@pytest.mark.parametrize("light", [PatchState, TransactionStatus, Health])
def test_the_light_str_enum_acts_as_the_real_one(light):
    real = enum.StrEnum(light.__name__, {m.name: m.value for m in light})  # type: ignore[misc]
    assert [(m.name, m.value) for m in light] == [(m.name, m.value) for m in real]
    assert len(light) == len(real)
    for member, twin in zip(light, real, strict=True):
        assert light(member.value) is member and light(member) is member
        assert (str(member), f"{member}", f"{member:>30}|", repr(member)) == (
            str(twin), f"{twin}", f"{twin:>30}|", repr(twin))  # fmt: skip
        assert member == twin.value and hash(member) == hash(twin.value)
        assert json.dumps({member: [member]}) == json.dumps({twin: [twin]})
        assert pickle.loads(pickle.dumps(member)) is member and copy.deepcopy(member) is member
        connection = sqlite3.connect(":memory:")
        assert connection.execute("SELECT ?", (member,)).fetchone() == (twin.value,)
        connection.close()


@pytest.mark.parametrize("value", ["nonsense", "", None, 3, ["applied"], "APPLIED"])
def test_a_value_that_is_no_member_is_a_value_error(value):
    with pytest.raises(ValueError, match="is not a valid PatchState"):
        PatchState(value)
    with pytest.raises(ValueError):
        Real(value)


def test_members_of_different_classes_stay_apart() -> None:
    assert TransactionStatus("done") is TransactionStatus.DONE
    assert repr(Health.GOOD) == "<Health.GOOD: 'good'>"
    with pytest.raises(ValueError, match="not a valid TransactionStatus"):
        TransactionStatus("good")


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


def test_a_field_that_must_be_given_after_one_that_need_not_is_refused_at_once():
    """As dataclasses refuses it, when the class is made, not at some later instance."""

    @plaindata.dataclass
    class Base:
        a: int = 1

    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @plaindata.dataclass
        class Sub(Base):
            b: int


@pytest.mark.parametrize("compile_after", [0, 64])
def test_fields_may_have_any_name_the_compiled_init_uses_none(monkeypatch, compile_after):
    monkeypatch.setattr(plaindata, "COMPILE_AFTER", compile_after)

    @plaindata.dataclass
    class Odd:
        d: int
        self: int = 2
        MISSING: str = "m"

    made = Odd(1, MISSING="x")
    assert made.__dict__ == {"d": 1, "self": 2, "MISSING": "x"}
