"""What every generator shares: the Jinja2 templates, the overwrite precheck, multi-file delivery.

Templates live in ``templates/*.j2`` beside this module and are filled from
``ProjectFacts``. ``refuse_overwrite`` is the precheck that answers 409
before any run starts when a write would replace a file without
``overwrite: true``; ``deliver`` itself still refuses (a file that appeared
meanwhile).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BaseModel, Field

from controlplane.core.actions import Action, project_path
from controlplane.core.errors import Conflict
from controlplane.core.integrations._generated_files import GenerateParams, deliver
from controlplane.core.integrations._project_facts import ProjectFacts

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
                               description="an environment variable name")]
HostName = Annotated[str, Field(
    pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$",
    max_length=253, description="a DNS host name, e.g. app.example.com")]

TEMPLATES = Environment(
    loader=PackageLoader("controlplane.core.integrations", "templates"),
    undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
    lstrip_blocks=True, autoescape=False,
)
# Characters a JSON string may hold raw but YAML (non-printable, or a line break that folds),
# TOML (DEL, C1 controls) or an encoder (lone surrogates) refuses: written as \u escapes.
RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def quote(value: Any) -> str:
    """*value* as a JSON literal that is also a valid YAML, TOML and JavaScript literal."""
    return RAW_UNSAFE.sub(lambda found: f"\\u{ord(found.group()):04x}",
                          json.dumps(value, ensure_ascii=False))


TEMPLATES.filters["quote"] = quote


def render(template: str, **values: Any) -> str:
    """Fill ``templates/<template>`` with *values*; the text ends with exactly one newline."""
    return TEMPLATES.get_template(template).render(**values).rstrip("\n") + "\n"


def render_facts(template: str, facts: ProjectFacts, **values: Any) -> str:
    """Fill a template with the project's facts, *values* added or overriding."""
    return render(template, **{**facts.as_template_vars(), **values})


Conflicts = Callable[[Path, Any], list[str]]


def existing(*fields: str) -> Conflicts:
    """The paths named by *fields* of the params that already exist in the project."""

    def find(root: Path, params: Any) -> list[str]:
        found = []
        for name in fields:
            relative = getattr(params, name)
            if relative and project_path(root, relative, name).exists():
                found.append(relative)
        return found

    return find


def refuse_overwrite(conflicts: Conflicts) -> Callable[[Path, BaseModel], None]:
    """A precheck: 409 before any run when writing would replace files without ``overwrite``."""

    def check(root: Path, params: BaseModel) -> None:
        if not getattr(params, "write", True) or getattr(params, "overwrite", False):
            return
        clash = conflicts(root, params)
        if clash:
            raise Conflict(f"{', '.join(clash)} exists: send \"overwrite\": true to replace it",
                           paths=clash)

    return check


def output_field(default: str | None, what: str) -> Any:
    """The field naming the file a generator writes (a ``ProjectPath``)."""
    return Field(default, min_length=1, max_length=300, description=f"{what}, inside the project")


def asked_to_write(params: BaseModel) -> bool:
    """A generator writes only when asked (``write``; true where the params have no such field);
    a preview runs under the read-only guard."""
    return bool(getattr(params, "write", True))


def generator(*, conflicts: Conflicts | None = None, lock_key: str = "generate:{output}",
              precheck: Callable[[Path, BaseModel], None] | None = None,
              **declaration: Any) -> Action:
    """A generator's declaration: locked on its output, 409 before a run that would overwrite
    (or *precheck*'s own refusal).

    Its description (the dashboard's help text) is the service's docstring.
    """
    declaration.setdefault("description", " ".join((declaration["service"].__doc__ or "").split()))
    declaration.setdefault("writes", asked_to_write)
    return Action(lock_key=lock_key,
                  precheck=precheck or refuse_overwrite(conflicts or existing("output")),
                  **declaration)


def same_kind_siblings(root: Path, relative: str, pattern: re.Pattern[str]) -> list[str]:
    """Files beside *relative* of the same kind in another name or case (``readme.md`` for
    ``README.md``, ``CHANGES.rst`` for ``CHANGELOG.md``)."""
    target = project_path(root, relative, "output")
    try:
        names = sorted(p.name for p in target.parent.iterdir() if p.is_file())
    except OSError:
        return []
    base = target.parent.relative_to(root.resolve())
    return [(base / name).as_posix() for name in names
            if pattern.match(name) and name != target.name]


def refuse_second_copy(pattern: re.Pattern[str], what: str) -> Callable[[Path, BaseModel], None]:
    """A precheck: 409 when the project already keeps its *what* under another name or case
    (a second README beside readme.md is refused), else the usual overwrite check."""

    def check(root: Path, params: BaseModel) -> None:
        relative = str(vars(params)["output"])
        if getattr(params, "write", True):
            others = same_kind_siblings(root, relative, pattern)
            if others:
                raise Conflict(f"{others[0]} is this project's {what}: send \"output\": "
                               f"\"{others[0]}\" (with \"overwrite\": true) to replace it, "
                               f"never a second {what} beside it", paths=others)
        refuse_overwrite(existing("output"))(root, params)

    return check


def deliver_all(root: Path, files: Iterable[tuple[str, str]], params: GenerateParams,
                field_name: str = "directory") -> list[dict[str, Any]]:
    """``deliver`` several files; all are checked for clashes before the first is written."""
    files = list(files)
    if params.write and not params.overwrite:
        clash = [rel for rel, _ in files if project_path(root, rel, field_name).exists()]
        if clash:
            raise Conflict(f"{', '.join(clash)} exists: send \"overwrite\": true to replace it",
                           paths=clash)
    return [deliver(root, rel, content, params, field_name) for rel, content in files]


def unsupported(facts: ProjectFacts, what: str) -> dict[str, Any]:
    """The failed result for a project whose language a generator has no template for."""
    return {"ok": False, "language": facts.language,
            "error": {"code": "unsupported_project",
                      "message": f"no {what} template for a {facts.language} project "
                                 "(found no requirements.txt, pyproject.toml, package.json "
                                 "or go.mod)"}}


# Small projects the examples of the generators run on (the action walk commits them).
FLASK_EXAMPLE = {
    "requirements.txt": "flask>=3.0\nredis>=5.0\n",
    "app.py": "import os\n\nfrom flask import Flask\n\napp = Flask(__name__)\n"
              "CACHE = os.environ[\"REDIS_URL\"]\nSECRET = os.getenv(\"SECRET_KEY\")\n\n"
              "if __name__ == \"__main__\":\n    app.run(host=\"0.0.0.0\", port=5000)\n",
}
NODE_EXAMPLE = {
    "package.json": '{"name": "orders", "main": "server.js", "scripts": {"start": '
                    '"node server.js"}, "dependencies": {"express": "^4.19.2", "pg": "^8.11.0"}}\n',
    "server.js": "const express = require('express');\nconst { Pool } = require('pg');\n"
                 "const pool = new Pool({ connectionString: process.env.DATABASE_URL });\n"
                 "const PORT = process.env.PORT || 3000;\nexpress().listen(PORT);\n",
}
