"""A light `dataclass` for the modules on the pacman hook's path.

`dataclasses` imports `inspect` (and with it `ast`, `dis`, `tokenize`) and compiles six methods
per class: on the hook's path that was 8 ms of imports and about a millisecond a class, paid
by every pacman transaction twice. This makes the same classes with one compiled `__init__`
and shared `__eq__`, `__hash__`, `__repr__` and frozen `__setattr__`, for the subset clp uses:
`frozen`, defaults, `field(default=, default_factory=, init=, repr=, compare=)` and
`__post_init__`. Type checkers see the real `dataclasses` (the modules import this one only
at run time), and `dataclasses.replace` works on these classes too (they carry
`__dataclass_fields__` with what it reads).
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
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
    cls.__init__ = _init_on_first_use(cls, fields)
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


def _init_on_first_use(cls: Any, fields: dict[str, Field]) -> Any:
    """An __init__ that compiles the real one when the first instance is made, and puts it in
    its place: a command makes instances of a few of the classes it imports (a listing
    imports a dozen and makes two kinds)."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if cls.__dict__.get("__init__") is __init__:
            cls.__init__ = _make_init(cls, fields)
        cls.__dict__["__init__"](self, *args, **kwargs)

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


class _StrEnumType(type):
    """The class of a light `StrEnum`: its upper-case string attributes become its members."""

    _value2member_: dict[str, Any]

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        values = {key: value for key, value in namespace.items()
                  if key.isupper() and isinstance(value, str)}  # fmt: skip
        cls = super().__new__(mcs, name, bases, {k: v for k, v in namespace.items()
                                                 if k not in values})  # fmt: skip
        cls._value2member_ = {}
        make: Any = str.__new__  # a member is a str of the class being made
        for key, value in values.items():
            member = make(cls, value)
            member._name_ = key
            setattr(cls, key, member)
            cls._value2member_[value] = member
        return cls

    def __call__(cls, value: Any) -> Any:
        try:
            return cls._value2member_[value]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

    def __iter__(cls) -> Iterator[Any]:
        return iter(cls._value2member_.values())

    def __len__(cls) -> int:
        return len(cls._value2member_)


class StrEnum(str, metaclass=_StrEnumType):
    """`enum.StrEnum` for the subset clp's records use, without the cost of making an Enum
    class (about 0.3 ms each, paid by every command and hook that imports the records): the
    members are strings equal to their values, printed and stored as them; `Kind(value)`
    is the member or a ValueError; `.name`, `.value`, iteration and `len` as an Enum's."""

    _name_: str

    @property
    def name(self) -> str:
        return self._name_

    @property
    def value(self) -> str:
        return str.__str__(self)

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(str.__str__(self), spec)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._name_}: {str.__repr__(self)}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        return type(self), (str.__str__(self),)
