"""``@plain_data`` gives a declaration what ``@dataclass`` would (issue 18, item 8): the
classes of the modules every command imports are declared with it."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from controlplane.core.plain_data import (
    FrozenError,
    as_dict,
    field,
    field_names,
    plain_data,
    required_names,
)
from controlplane.core.runs import Run


@plain_data
class Mutable:
    name: str
    count: int = 0
    tags: list[str] = field(default_factory=list)
    kind: ClassVar[str] = "not a field"


@plain_data(frozen=True)
class Frozen:
    name: str
    nested: dict[str, list[int]] = field(default_factory=dict)


@plain_data(frozen=True)
class Child(Frozen):
    extra: str = "x"


@plain_data(frozen=True)
class Point:
    x: int
    rest: tuple[int, ...] = ()


@dataclasses.dataclass
class Reference:  # the same declaration as Mutable, by dataclasses
    name: str
    count: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)
    kind: ClassVar[str] = "not a field"


def test_init_repr_and_eq_are_those_of_the_dataclass() -> None:
    for args, kwargs in [(("a",), {}), (("a", 2), {}), ((), {"name": "a", "tags": ["t"]})]:
        ours, theirs = Mutable(*args, **kwargs), Reference(*args, **kwargs)
        assert repr(ours).replace("Mutable", "Reference") == repr(theirs)
        assert as_dict(ours) == dataclasses.asdict(theirs)
    assert Mutable("a") == Mutable("a") and Mutable("a") != Mutable("b")
    assert Mutable("a") != Reference("a")  # another class is never equal
    assert Mutable("a").tags is not Mutable("a").tags  # a fresh default each time
    assert field_names(Mutable) == ("name", "count", "tags")
    assert required_names(Mutable) == ("name",)
    assert Mutable.__hash__ is None  # mutable and compared by value: unhashable


@pytest.mark.parametrize("call", [lambda: Mutable(), lambda: Mutable("a", 1, [], 4),
                                  lambda: Mutable("a", name="b"), lambda: Mutable("a", size=1)])
def test_wrong_arguments_raise_type_error_as_the_dataclass_does(call) -> None:
    with pytest.raises(TypeError):
        call()


def test_frozen_refuses_assignment_and_hashes_by_value() -> None:
    first = Frozen("a")
    with pytest.raises(FrozenError):
        first.name = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):  # FrozenError is an AttributeError, as FrozenInstanceError
        del first.name  # type: ignore[misc]
    point = Point(1, (2, 3))
    assert hash(point) == hash(Point(1, (2, 3))) and {point, Point(1, (2, 3))} == {point}
    with pytest.raises(TypeError, match="unhashable"):  # a dict field: as with dataclasses
        hash(first)


def test_a_subclass_adds_its_fields_after_its_base() -> None:
    child = Child("a", {"k": [1]}, "y")
    assert field_names(child) == ("name", "nested", "extra")
    copied = as_dict(child)
    assert copied == {"name": "a", "nested": {"k": [1]}, "extra": "y"}
    copied["nested"]["k"].append(2)  # a copy, as dataclasses.asdict makes
    assert child.nested == {"k": [1]}


def test_a_method_the_class_defines_is_kept() -> None:
    @plain_data
    class Own:
        name: str

        def __repr__(self) -> str:
            return "own"

    assert repr(Own("a")) == "own" and Own("a") == Own("a")


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="non-default argument 'late'"):
        @plain_data
        class Wrong:
            early: int = 0
            late: int


@pytest.mark.parametrize("decorate", [plain_data, dataclasses.dataclass])
def test_a_class_own_setattr_sees_every_field_in_order_as_with_dataclass(decorate) -> None:
    """The Run model checks some fields as they are set: ``__init__`` must go through the
    class's ``__setattr__``, a subclass's too, while plain classes are filled at once."""
    seen: list[str] = []

    @decorate
    class Checked:
        first: str
        second: int = 2

        def __setattr__(self, name: str, value: object) -> None:
            seen.append(name)
            object.__setattr__(self, name, value)

    class Sub(Checked):
        def __setattr__(self, name: str, value: object) -> None:
            seen.append(f"sub:{name}")
            super().__setattr__(name, value)

    Checked("a")
    Sub("b", second=3)
    assert seen == ["first", "second", "sub:first", "first", "sub:second", "second"]
    assert vars(Sub("c")) == {"first": "c", "second": 2}
    assert list(vars(Mutable("n"))) == ["name", "count", "tags"]  # declaration order


def test_every_field_given_in_order_is_the_same_object_as_by_name() -> None:
    """A writer records a dozen ``Written`` per run, each with all its fields in order."""
    assert Mutable("a", 2, ["t"]) == Mutable(name="a", count=2, tags=["t"])
    assert vars(Mutable("a", 2, ["t"])) == {"name": "a", "count": 2, "tags": ["t"]}
    assert Frozen("f", {"k": [1]}) == Frozen(name="f", nested={"k": [1]})
    with pytest.raises(FrozenError):
        Frozen("f", {}).name = "g"  # type: ignore[misc]
    assert Child("c", {}, "y").extra == "y"


def test_a_hook_sees_only_the_fields_it_names_and_a_subclass_hook_sees_all() -> None:
    seen: list[str] = []

    @plain_data
    class Checked:
        first: str
        second: int = 2
        third: str = "c"
        __plain_checked__ = ("third",)

        def __setattr__(self, name: str, value: object) -> None:
            seen.append(name)
            object.__setattr__(self, name, value.upper() if name == "third" else value)

    class Sub(Checked):
        def __setattr__(self, name: str, value: object) -> None:
            seen.append(f"sub:{name}")
            super().__setattr__(name, value)

    made = Checked("a", third="x")
    assert seen == ["third"] and vars(made) == {"first": "a", "second": 2, "third": "X"}
    seen.clear()
    Sub("b")
    assert seen == ["sub:first", "first", "sub:second", "second", "sub:third", "third"]
    made.first = "z"  # later sets: every field through the hook, as before
    assert seen[-1] == "first"


def test_a_run_makes_a_lone_surrogate_valid_from_its_start() -> None:
    run = Run(run_id="r", type="test", subtype="test:x", summary="report-\udcff.txt",
              error={"message": "\udcff"})
    assert run.summary == "report-\\xff.txt" and run.error == {"message": "\\xff"}
