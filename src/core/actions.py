"""Actions as data: one frozen declaration per action, one registry.

Validation, the dashboard's form and the OpenAPI document all come from the
declaration's pydantic model; the web layer's route factory turns each into
a route. Integrations register their actions at import.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, SecretStr, ValidationError, ValidationInfo

from controlplane.core.contracts import RunReporter
from controlplane.core.errors import InvalidInput
from controlplane.core.runs import check_subtype, type_of
from controlplane.core.tools import ToolResult, run_tool


@dataclass(frozen=True, kw_only=True)
class Example:
    """A worked example, run by the test that walks every declaration.

    The walk writes ``files`` into a fresh project, puts on PATH a fake ``tool``
    that records its argv and prints ``tool_output``, posts ``params`` and checks
    the answer holds ``expect`` (a subset) and the tool saw ``argv`` (``"*"``
    matches any one item). ``invalid`` is a body that must get 422 naming
    ``invalid_field``.
    """

    params: dict[str, Any] = field(default_factory=dict)
    tool: str | None = None  # the executable the service needs (tool_missing without it)
    argv: tuple[str, ...] | None = None  # the exact command the service runs, if it runs one
    tool_output: str = ""  # what the fake tool prints (the real tool's machine-readable form)
    files: dict[str, str] = field(default_factory=dict)  # project files the example needs
    expect: dict[str, Any] = field(default_factory=dict)  # a subset of the expected result
    invalid: dict[str, Any] | None = None
    invalid_field: str | None = None
    remote: str | None = None  # a bare remote of this name the example needs (e.g. "origin")
    note: str = ""


@dataclass
class ActionContext:
    """What a service gets besides its parameters: where to work, how to run tools."""

    project_root: Path
    run: RunReporter  # the ActiveRun the service reports to
    env: Mapping[str, str] | None = None
    timeout: float | None = 900.0
    settings: Mapping[str, Any] = field(default_factory=dict)

    def tool(self, argv: list[str], **options: Any) -> ToolResult:
        """Run a tool in the project root through the one tool runner, streaming into the run."""
        options.setdefault("cwd", self.project_root)
        options.setdefault("timeout", self.timeout)
        options.setdefault("env", self.env)
        return run_tool(argv, run=self.run, **options)


ModelT = TypeVar("ModelT", bound=BaseModel)
Service = Callable[..., dict[str, Any]]  # (ActionContext, its params model) -> result


@dataclass(frozen=True, kw_only=True)
class Action:
    """One action route: ``POST <path>`` starts a run of ``subtype`` through ``service``."""

    path: str  # "/testing/run"; may hold <name> segments, merged into params
    subtype: str  # "test:run"
    title: str
    params: type[BaseModel]
    service: Service
    integration: str = ""
    lock_key: str = "{route}"  # may name params ("testing:{path}" is the tests' path)
    destructive: bool = False
    # Whether a run may change the project's work tree. False: the runtime runs the service
    # under the read-only guard (``_read_only``: no-write environment, ``wrote_files`` if the
    # tree changed). True, or a callable of the params answering per call (a generator's
    # ``write``, format without ``check``): it runs unguarded and says what it wrote.
    writes: bool | Callable[[Any], bool] = False
    example: Example = field(default_factory=Example)
    description: str = ""
    # Checks that need the project (not just the body) and refuse before any run starts:
    # raise a ControlPlaneError (e.g. Conflict → 409 "nothing to commit"); records nothing.
    # It receives the validated instance of ``params``, hence Any (like ``writes``).
    precheck: Callable[[Path, Any], None] | None = None

    def __post_init__(self) -> None:
        check_subtype(self.subtype.partition(":")[0], self.subtype)
        if not self.integration:
            object.__setattr__(self, "integration", self.path.strip("/").split("/")[0])

    @property
    def run_type(self) -> str:
        return type_of(self.subtype)

    def writes_for(self, params: BaseModel) -> bool:
        """Whether this call may write to the work tree (see ``writes``)."""
        return bool(self.writes(params)) if callable(self.writes) else self.writes

    @property
    def url_params(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.path)

    def validate(self, data: Mapping[str, Any], project_root: Path | None = None) -> BaseModel:
        """The parameters as the model; InvalidInput names every bad field.

        *project_root* lets ``ProjectPath`` fields refuse paths outside the project.
        """
        return validate_model(self.params, data, {"project_root": project_root})

    def lock_for(self, params: BaseModel, path: str) -> str:
        """The lock key: runs with the same key never overlap (default: the route).

        ``{route}`` is the request's route; ``{path}`` is the route too unless the
        params have a ``path`` field (the route must not override it).
        """
        values = {k: v for k, v in params.model_dump().items() if not isinstance(v, SecretStr)}
        names = {n for _, n, _, _ in string.Formatter().parse(self.lock_key) if n}
        values = {"path": path, **values, "route": path}
        return self.lock_key.format(**{n: values.get(n, "") for n in names})


def validate_model(model: type[ModelT], data: Mapping[str, Any],
                   context: dict[str, Any] | None = None) -> ModelT:
    """*data* as *model*; InvalidInput naming every bad field (dotted paths for nested ones)."""
    try:
        return model.model_validate(dict(data), context=context)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]) or "body"
            fields.setdefault(name, _message(error))
        raise InvalidInput(fields) from None


def _message(error: Any) -> str:
    """A field's error as a person reads it: a check's own ValueError is its message alone
    (pydantic writes ``Value error, …`` in front), pydantic's own messages as they are."""
    raised = (error.get("ctx") or {}).get("error")
    if error["type"] == "value_error" and isinstance(raised, ValueError) and str(raised):
        return str(raised)
    return str(error["msg"])


def stored_params(params: BaseModel) -> dict[str, Any]:
    """Parameters fit for the ledger: secret fields dropped, named in ``_withheld_fields``."""
    data = params.model_dump(mode="json")
    secret = [name for name, value in params if isinstance(value, SecretStr)]
    for name in secret:
        data.pop(name, None)
    if secret:
        data["_withheld_fields"] = secret
    return data


REGISTRY: dict[str, Action] = {}


def register(*actions: Action) -> None:
    """Add declarations; a path declared twice is a programming error."""
    for action in actions:
        if action.path in REGISTRY and REGISTRY[action.path] is not action:
            raise ValueError(f"action {action.path} declared twice")
        REGISTRY[action.path] = action


def load_integrations() -> dict[str, Action]:
    """Import every integration module (each registers its actions); returns the registry."""
    import controlplane.core.integrations as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    return REGISTRY


def by_integration() -> dict[str, list[Action]]:
    grouped: dict[str, list[Action]] = {}
    for action in REGISTRY.values():
        grouped.setdefault(action.integration, []).append(action)
    return grouped


def _inside_project(value: str | None, info: ValidationInfo) -> str | None:
    root = (info.context or {}).get("project_root")
    if value is None or root is None:
        return value
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    candidate = (Path(root) / value).resolve()
    if os.path.commonpath([candidate, Path(root).resolve()]) != str(Path(root).resolve()):
        raise ValueError(f"{value!r} is outside the project")
    return value


ProjectPath = Annotated[str, AfterValidator(_inside_project)]
"""A path relative to the project root; validation refuses one that escapes it."""


def project_path(root: Path, relative: str, field_name: str = "path") -> Path:
    """*relative* resolved inside *root*; InvalidInput naming *field_name* if it escapes."""
    candidate = (root / relative).resolve()
    if os.path.commonpath([candidate, root.resolve()]) != str(root.resolve()):
        raise InvalidInput({field_name: f"{relative!r} is outside the project"})
    return candidate
