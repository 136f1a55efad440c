"""A ledger file's JSON (``ledger/jsonfile.py``) is ``json.dumps(..., ensure_ascii=False,
sort_keys=True, indent=1)`` byte for byte, whatever a run's params, result or metadata hold:
the ledger's bytes, and so its commits, must not depend on which writer made them."""

from __future__ import annotations

import enum
import json
import math
import random
import re

import pytest

from controlplane.core.ledger.jsonfile import pretty
from controlplane.core.output import compact_json
from controlplane.core.runs import Run, RunStatus


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


SCALARS = [None, True, False, 0, -1, 2**70, -(2**64), 1.5, -0.0, 1e300, 5e-324, math.inf,
           -math.inf, math.nan, "", "plain", "é ü 日本", "\U0001f600", "\ud800 lone",
           "quote \" back \\ slash", "\n\t\r\b\f\x00\x1f\x7f", "\u2028\u2029",
           Colour.RED, Level.HIGH, Text("sub")]
KEYS = ["", "a", "B", "a b", "é", "\U0001f600", "z" * 40, "10", "9", "\x00"]


def random_value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        return rng.choice(SCALARS)
    if roll < 0.75:
        return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    items = [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return tuple(items) if rng.random() < 0.2 else items


def expected(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1)


def test_any_json_value_is_written_as_json_writes_it() -> None:
    rng = random.Random(18)
    for _ in range(3000):
        value = random_value(rng)
        assert pretty(value) == expected(value), value


def test_a_run_json_is_written_as_json_writes_it() -> None:
    run = Run.new("deploy:staging", summary="deploy \U0001f680",
                  params={"target": "staging", "dry_run": False, "replicas": 3},
                  code_ref={"commit": "a" * 40, "branch": "main", "dirty": True})
    run.finish(RunStatus.FAILED, {"code": "exit", "message": "exit 1"})
    assert pretty(run.to_dict()) == expected(run.to_dict())


@pytest.mark.parametrize("value", [
    {1: "an int key"}, {None: 1, "a": 2}, {2.5: "float key"}, {True: "bool key"},
    {"a": {3: [1]}}, [b"bytes"], {"set": {1}}, {"a": object()},
])
def test_what_json_converts_or_refuses_goes_through_json(value: object) -> None:
    try:
        wanted = expected(value)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            pretty(value)
    else:
        assert pretty(value) == wanted


def test_a_cycle_is_refused_as_json_refuses_it() -> None:
    looped: dict[str, object] = {}
    looped["self"] = looped
    with pytest.raises(ValueError, match="Circular reference"):
        pretty(looped)


def test_the_compact_encoder_writes_what_json_dumps_writes() -> None:
    """Events, the journal and the index use ``compact_json``: json's C encoder without
    the encoder ``dumps`` builds per call; the same text, the same refusals."""
    rng = random.Random(9)
    for _ in range(2000):
        value = random_value(rng)
        assert compact_json(value) == json.dumps(value, ensure_ascii=False)
    for value in ({1: "a", None: 2, 2.5: 3}, {True: 4}, {"a": {1}}, [b"x"]):
        try:
            wanted = json.dumps(value, ensure_ascii=False)
        except TypeError as exc:
            with pytest.raises(TypeError, match=re.escape(str(exc))):
                compact_json(value)
        else:
            assert compact_json(value) == wanted
    looped: list[object] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        compact_json(looped)
