"""A light `dataclass` for the modules on the pacman hook's path.

`dataclasses` imports `inspect` (and with it `ast`, `dis`, `tokenize`) and compiles six methods
per class: on the hook's path that was 8 ms of imports and about a millisecond a class, paid
by every pacman transaction twice. This makes the same classes with an `__init__` (a loop
over the fields for a class's first instances, then one compiled for it: compiling costs as
much as sixty instances) and shared `__eq__`, `__hash__`, `__repr__` and frozen `__setattr__`,
for the subset clp uses: `frozen`, defaults, `field(default=, default_factory=, init=, repr=,
compare=)` and `__post_init__`. Type checkers see the real `dataclasses` (the modules import
this one only at run time), and `dataclasses.replace` works on these classes too (they carry
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
    _check_field_order(cls, fields)
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


# Instances a class makes through the generic __init__ before its own is compiled: compiling
# one costs about as much as sixty generic calls, and most classes a command imports make only
# a few instances (a pacman hook makes nine kinds, a few of each, and has no time to compile).
COMPILE_AFTER = 64


def _init_on_first_use(cls: Any, fields: dict[str, Field]) -> Any:
    """An __init__ that fills in the fields itself for the first COMPILE_AFTER instances, then
    compiles the real one and puts it in its place. A call the generic one does not take as it
    is (a missing, unknown or repeated argument) goes to the compiled one, which raises the
    TypeError Python gives any function."""
    generic = _GenericInit(cls, fields)
    made = 0

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal made
        made += 1
        if made <= COMPILE_AFTER and generic.fill(self, args, kwargs):
            return
        if cls.__dict__.get("__init__") is __init__:
            cls.__init__ = _make_init(cls, fields)
        cls.__dict__["__init__"](self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


class _GenericInit:
    """What the compiled __init__ does, by a loop over the fields."""

    __slots__ = ("cls", "names", "accepted", "required", "steps")

    def __init__(self, cls: Any, fields: dict[str, Field]) -> None:
        self.cls = cls
        self.names = tuple(name for name, spec in fields.items() if spec.init)
        self.accepted = frozenset(self.names)
        self.required = tuple(
            name
            for name, spec in fields.items()
            if spec.init and spec.default is MISSING and spec.default_factory is MISSING
        )
        self.steps = tuple((name, spec.init, spec.default, spec.default_factory)
                           for name, spec in fields.items())  # fmt: skip

    def fill(self, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Set `obj`'s fields as the compiled __init__ would; False (nothing set) for a call
        it would refuse."""
        if len(args) > len(self.names):
            return False
        given = dict(zip(self.names, args, strict=False))  # fewer args than fields
        for key in kwargs:
            if key in given or key not in self.accepted:
                return False
        given.update(kwargs)
        if not all(name in given for name in self.required):
            return False
        values = {}
        for name, init, default, factory in self.steps:
            if init and name in given:
                value = given[name]
                if value is MISSING and factory is not MISSING:
                    value = factory()
            elif default is not MISSING:
                value = default
            elif factory is not MISSING:
                value = factory()
            else:
                continue  # init=False and nothing to start with: left unset
            values[name] = value
        obj.__dict__.update(values)
        if hasattr(self.cls, "__post_init__"):
            obj.__post_init__()
        return True


# The compiled __init__'s own names, which no field is called
_SELF, _FIELDS, _MISSING = "_plaindata_self", "_plaindata_fields", "_plaindata_missing"


def _make_init(cls: Any, fields: dict[str, Field]) -> Any:
    """__init__, compiled once: the records are made by the thousand in a snapshot."""
    scope: dict[str, Any] = {_MISSING: MISSING}
    parameters = []
    body = [f"    {_FIELDS} = {_SELF}.__dict__"]
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
                parameters.append(f"{name}={_MISSING}")
                value = f"_f_{name}() if {name} is {_MISSING} else {name}"
            else:
                parameters.append(name)
        elif spec.default is not MISSING:
            value = f"_d_{name}"
        elif spec.default_factory is not MISSING:
            value = f"_f_{name}()"
        else:
            continue
        body.append(f"    {_FIELDS}[{name!r}] = {value}")
    if hasattr(cls, "__post_init__"):
        body.append(f"    {_SELF}.__post_init__()")
    source = f"def __init__({_SELF}, {', '.join(parameters)}):\n" + "\n".join(body) + "\n"
    exec(source, scope)  # noqa: S102 - our own field names, as dataclasses does
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _check_field_order(cls: Any, fields: dict[str, Field]) -> None:
    """As dataclasses refuses it when the class is made: a field that must be given after
    one that need not (the compiled __init__ could not be written)."""
    optional = None
    for name, spec in fields.items():
        if not spec.init:
            continue
        if spec.default is not MISSING or spec.default_factory is not MISSING:
            optional = name
        elif optional is not None:
            raise TypeError(f"non-default argument {name!r} follows default argument")


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
