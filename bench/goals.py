"""Goals of the performance issue: one measured ratio against its limit, printed alike."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Goal:
    """``value`` (a ratio or a figure) must be at most ``limit`` (or at least, when ``floor``)."""

    name: str
    value: float
    limit: float
    unit: str = "x"
    at_least: bool = False
    note: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def line(self) -> str:
        sign = ">=" if self.at_least else "<="
        verdict = "met" if self.met else "MISSED"
        note = f"  ({self.note})" if self.note else ""
        return (f"  {self.name:52} {self.value:9.2f}{self.unit:3} goal {sign} "
                f"{self.limit:g}{self.unit}: {verdict}{note}")


def print_goals(title: str, goals: list[Goal]) -> None:
    print(f"\n{title}")
    for goal in goals:
        print(goal.line())
