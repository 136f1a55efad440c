"""A module, or a name from one, imported on first use (start-up time, issue 18 item 8).

::

    if TYPE_CHECKING:
        import pygit2
    else:
        pygit2 = Lazy(globals(), "pygit2")

The first attribute read imports the module and puts it in the holder's namespace in
place of the proxy, so later reads cost nothing. ``isinstance(x, proxy)`` and calling
the proxy are not supported: read an attribute (``pygit2.Oid``) instead.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # typing costs a command ~3 ms of start-up; packages import this
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Lazy:
    """Stands for *module* (or its *attribute*) under *name* in *namespace* until first used."""

    __slots__ = ("_attribute", "_module", "_name", "_namespace")

    def __init__(self, namespace: dict[str, Any], name: str, module: str | None = None,
                 attribute: str | None = None) -> None:
        self._namespace = namespace
        self._name = name
        self._module = module or name
        self._attribute = attribute

    def load(self) -> Any:
        """Import now; the holder's name then refers to the real object."""
        value: Any = importlib.import_module(self._module)
        if self._attribute is not None:
            value = getattr(value, self._attribute)
        if self._namespace.get(self._name) is self:
            self._namespace[self._name] = value
        return value

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.load(), attribute)

    def __repr__(self) -> str:
        target = f"{self._module}.{self._attribute}" if self._attribute else self._module
        return f"<lazy {target}>"


class Logger:
    """``logging.getLogger(name)``, made at the first message: ``logging`` (with
    ``traceback``, ``string``, ``weakref``) costs a command that logs nothing ~5 ms."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._logger is None:
            import logging

            self._logger = logging.getLogger(self._name)
        return getattr(self._logger, attribute)


def exports(namespace: dict[str, Any], names: dict[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` (PEP 562) importing each of *names* (name -> module)
    on first use, then keeping it in *namespace*."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        namespace[name] = value
        return value

    return __getattr__


def loaded(name: str) -> bool:
    """True once module *name* is fully imported in this process (not while a thread is
    still importing it)."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)
