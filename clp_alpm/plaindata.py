"""A light `dataclass` and `StrEnum` for the modules on the pacman hook's path.

`dataclasses` imports `inspect` (and with it `ast`, `dis`, `tokenize`) and compiles six methods
per class: on the hook's path that was 8 ms of imports and about a millisecond a class, paid
by every pacman transaction twice. This makes the same classes with one compiled `__init__`
and shared `__eq__`, `__hash__`, `__repr__` and frozen `__setattr__`, for the subset clp uses:
`frozen`, defaults, `field(default=, default_factory=, init=, repr=, compare=)` and
`__post_init__`. Type checkers see the real `dataclasses` (the modules import this one only
at run time), and `dataclasses.replace` works on these classes too (they carry
`__dataclass_fields__` with what it reads).

`StrEnum` likewise: making an `enum.StrEnum` class runs enum's machinery (about 0.2 ms each,
nine of them in store/records.py). Members here are `str` instances of their class, with
`name` and `value`; `Class(value)` finds the member (ValueError for any other value), as
enum's do. Nothing iterates over these classes, so they need no metaclass.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """One field; `_field_type` None is what `dataclasses.replace` takes for a plain field."""

    __slots__ = ("name", "default", "default_factory", "init", "repr", "compare", "_field_type")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        init: bool = True,
        repr: bool = True,
        compare: bool = True,
    ) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare
        self._field_type = None


def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    init: bool = True,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    return Field(default, default_factory, init, repr, compare)


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen instance (as dataclasses.FrozenInstanceError)."""


def dataclass(cls: Any = None, /, *, frozen: bool = False) -> Any:
    def wrap(cls: Any) -> Any:
        return _process(cls, frozen)

    return wrap if cls is None else wrap(cls)


def replace(obj: Any, /, **changes: Any) -> Any:
    """A copy of `obj` with `changes` (fields that are not init parameters are made again)."""
    for name, spec in type(obj).__dataclass_fields__.items():
        if not spec.init:
            if name in changes:
                raise ValueError(f"field {name} is declared with init=False")
        elif name not in changes:
            changes[name] = obj.__dict__[name]
    return obj.__class__(**changes)


def _process(cls: Any, frozen: bool) -> Any:
    fields: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        fields.update(base.__dict__.get("__dataclass_fields__", {}))
    for name in cls.__dict__.get("__annotations__", {}):
        value = cls.__dict__.get(name, MISSING)
        spec = value if isinstance(value, Field) else Field(default=value)
        spec.name = name
        if isinstance(value, Field):
            if spec.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
        fields[name] = spec
    cls.__dataclass_fields__ = fields
    cls.__init__ = _compiling_init(cls, fields)
    compared = [name for name, spec in fields.items() if spec.compare]
    key: Callable[[Any], Any] = attrgetter(*compared) if compared else (lambda _self: ())

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) == key(other)

    shown = [name for name, spec in fields.items() if spec.repr]

    def __repr__(self: Any) -> str:
        values = ", ".join(f"{name}={self.__dict__.get(name)!r}" for name in shown)
        return f"{type(self).__qualname__}({values})"

    cls.__eq__ = __eq__
    if "__repr__" not in cls.__dict__:
        cls.__repr__ = __repr__
    if "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
        cls.__hash__ = (lambda self: hash(key(self))) if frozen else None
    setattr(cls, "__match_args__", tuple(name for name, spec in fields.items() if spec.init))  # noqa: B010
    if frozen:
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
    return cls


def _compiling_init(cls: Any, fields: dict[str, Field]) -> Any:
    """An __init__ that compiles the real one on the first instance and puts it in its place:
    most classes a hook's modules define never make one there, and compiling them all was
    a twelfth of the hook's work."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if cls.__dict__.get("__init__") is __init__:
            cls.__init__ = _make_init(cls, fields)
        cls.__init__(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _make_init(cls: Any, fields: dict[str, Field]) -> Any:
    """__init__, compiled once: the records are made by the thousand in a snapshot."""
    scope: dict[str, Any] = {"MISSING": MISSING}
    parameters = []
    body = ["    d = self.__dict__"]
    for name, spec in fields.items():
        value = name
        if spec.default is not MISSING:
            scope[f"_d_{name}"] = spec.default
        if spec.default_factory is not MISSING:
            scope[f"_f_{name}"] = spec.default_factory
        if spec.init:
            if spec.default is not MISSING:
                parameters.append(f"{name}=_d_{name}")
            elif spec.default_factory is not MISSING:
                parameters.append(f"{name}=MISSING")
                value = f"_f_{name}() if {name} is MISSING else {name}"
            else:
                parameters.append(name)
        elif spec.default is not MISSING:
            value = f"_d_{name}"
        elif spec.default_factory is not MISSING:
            value = f"_f_{name}()"
        else:
            continue
        body.append(f"    d[{name!r}] = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "\n".join(body) + "\n"
    exec(source, scope)  # noqa: S102 - our own field names, as dataclasses does
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


class StrEnum(str):
    """Members are the class's upper-case string attributes, made instances of it."""

    _members: dict[str, Any]
    _name_: str

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._members = {}
        for name, value in list(cls.__dict__.items()):
            if name.isupper() and type(value) is str:
                member = str.__new__(cls, value)
                member._name_ = name
                setattr(cls, name, member)
                cls._members[value] = member

    def __new__(cls, value: str) -> Any:
        try:
            return cls._members[value]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

    @property
    def name(self) -> str:
        return self._name_

    @property
    def value(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__}.{self._name_}: {str.__repr__(self)}>"

    __str__ = str.__str__
    __format__ = str.__format__

    def __reduce__(self) -> Any:
        return type(self), (str(self),)
