"""``@plain_data``: the data classes of the modules every command imports, without
``dataclasses`` (start-up time, issue 18 item 8).

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``): ~10 ms of
the start of every process on an interpreter whose ``site`` imports nothing, and each
``@dataclass`` compiles its methods with ``exec``: ~0.5 ms a class. ``controlplane exec``
and a script's ``tracked_run`` import about twenty such classes (the Run model, the
journal, the event shapes, settings, redaction, the tool runner). They are declared the
same way with ``@plain_data``::

    @plain_data(frozen=True)
    class Shape:
        name: str
        tags: list[str] = field(default_factory=list)
        lowered: bool = False

and get what ``@dataclass`` would give them: ``__init__`` (positional or keyword, in
declaration order, base classes' fields first), ``__repr__``, ``__eq__``; ``__hash__`` when
frozen, none otherwise; a frozen instance refuses assignment. The methods are closures
over the declaration, not compiled source. A method the class defines itself is kept.
A class with its own ``__setattr__`` sees ``__init__`` set every field through it, or
only those it names in ``__plain_checked__`` (the Run model checks two of twenty).
Type checkers read the decorator as a dataclass (PEP 681). The other modules keep
``dataclasses``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a command ~3 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    _T = TypeVar("_T")
    _C = TypeVar("_C", bound=type)
else:
    def dataclass_transform(**_options):  # a marker for type checkers only
        return lambda decorator: decorator

_MISSING = object()


class FrozenError(AttributeError):
    """An assignment to a field of a frozen instance."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], _T]) -> _T:
    """A field whose default is made for each instance: ``field(default_factory=dict)``."""
    return _Factory(default_factory)  # type: ignore[return-value]


def field_names(cls_or_instance: Any) -> tuple[str, ...]:
    """The names of the fields, in ``__init__``'s order."""
    return cls_or_instance.__plain_fields__  # type: ignore[no-any-return]


def required_names(cls: type) -> tuple[str, ...]:
    """The fields ``__init__`` needs: those with neither a default nor a factory."""
    specs = cls.__plain_specs__  # type: ignore[attr-defined]
    return tuple(name for name, default, make in specs if default is _MISSING and make is None)


def as_dict(instance: Any) -> dict[str, Any]:
    """The fields as a dict, nested dicts, lists and tuples copied (as ``asdict`` does)."""
    return {name: _copied(getattr(instance, name)) for name in field_names(instance)}


def _copied(value: Any) -> Any:
    if hasattr(type(value), "__plain_fields__"):
        return as_dict(value)
    if isinstance(value, dict):
        return {_copied(k): _copied(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copied(v) for v in value)
    return value


def _declared(cls: type) -> list[tuple[str, Any, Any]]:
    """(name, default, factory) of each field: the bases' first, then the class's own."""
    specs: dict[str, tuple[str, Any, Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        for spec in base.__dict__.get("__plain_specs__", ()):
            specs[spec[0]] = spec
    own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (inspect is what this avoids)
    for name, annotation in own.items():
        if "ClassVar" in str(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Factory):
            delattr(cls, name)
            specs[name] = (name, _MISSING, value.make)
        else:  # a plain default stays a class attribute, as with dataclasses
            specs[name] = (name, value, None)
    seen_default = False
    for name, default, make in specs.values():
        if default is _MISSING and make is None and seen_default:
            raise TypeError(f"non-default argument {name!r} follows default argument")
        seen_default = seen_default or default is not _MISSING or make is not None
    return list(specs.values())


_SET_PLAIN = object.__setattr__


def _set_new(cls: type, name: str, value: Any) -> None:
    if name not in cls.__dict__:
        setattr(cls, name, value)


def _methods(cls: type, specs: list[tuple[str, Any, Any]], frozen: bool) -> None:
    names = tuple(spec[0] for spec in specs)
    own_hook = cls.__dict__.get("__setattr__")
    checked = tuple(name for name in names if name in getattr(cls, "__plain_checked__", ()))
    assign = object.__setattr__ if frozen else setattr
    title = cls.__name__

    defaults = {name: default for name, default, _ in specs if default is not _MISSING}
    factories = tuple((name, make) for name, _, make in specs if make is not None)
    required = tuple(name for name, default, make in specs
                     if default is _MISSING and make is None)
    allowed = frozenset(names)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) == len(names) and not kwargs and \
                (frozen or type(self).__setattr__ is _SET_PLAIN):  # every field, in order
            self.__dict__.update(zip(names, args, strict=True))
            return
        if args:
            if len(args) > len(names):
                raise TypeError(f"{title}() takes {len(names)} positional arguments "
                                f"but {len(args)} were given")
            for name, value in zip(names, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{title}() got multiple values for argument {name!r}")
                kwargs[name] = value
        if not allowed.issuperset(kwargs):
            unknown = next(name for name in kwargs if name not in allowed)
            raise TypeError(f"{title}() got an unexpected keyword argument {unknown!r}")
        for name in required:
            if name not in kwargs:
                raise TypeError(f"{title}() missing required argument: {name!r}")
        values = {**defaults, **kwargs}
        for name, make in factories:
            if name not in kwargs:
                values[name] = make()
        hook = type(self).__setattr__
        if frozen or hook is _SET_PLAIN:
            hooked: tuple[str, ...] = ()  # no hook: every field stored at once
        elif checked and hook is own_hook:
            hooked = checked  # the hook wants these alone
        else:
            hooked = names  # every field through the class's __setattr__, in order
        if hooked is not names:
            self.__dict__.update({name: values[name] for name in names})
        for name in hooked:
            assign(self, name, values[name])

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in names)

    _set_new(cls, "__init__", __init__)
    _set_new(cls, "__repr__", __repr__)
    _set_new(cls, "__eq__", __eq__)
    def __hash__(self: Any) -> int:
        return hash(tuple(getattr(self, name) for name in names))

    if cls.__dict__.get("__hash__") is None:  # undefined, or made None by a class __eq__
        setattr(cls, "__hash__", __hash__ if frozen else None)  # noqa: B010 (as dataclasses)
    if frozen:
        def __setattr__(self: Any, name: str, value: Any) -> None:
            raise FrozenError(f"cannot assign to field {name!r}")

        def __delattr__(self: Any, name: str) -> None:
            raise FrozenError(f"cannot delete field {name!r}")

        _set_new(cls, "__setattr__", __setattr__)
        _set_new(cls, "__delattr__", __delattr__)


@dataclass_transform(field_specifiers=(field,))
def plain_data(cls: _C | None = None, /, *, frozen: bool = False) -> Any:
    """Make *cls* a data class, as ``@dataclass`` (or ``@dataclass(frozen=True)``) would."""

    def build(target: _C) -> _C:
        specs = _declared(target)
        target.__plain_specs__ = tuple(specs)  # type: ignore[attr-defined]
        target.__plain_fields__ = tuple(spec[0] for spec in specs)  # type: ignore[attr-defined]
        _methods(target, specs, frozen)
        return target

    return build if cls is None else build(cls)
