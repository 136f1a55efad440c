"""Docker generators: Dockerfile, .dockerignore and compose files fitted to the project."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field

from controlplane.core.actions import ActionContext, Example, ProjectPath, register
from controlplane.core.integrations._cli_tools import DNSName, ImageRef
from controlplane.core.integrations._generated_files import GenerateParams, deliver
from controlplane.core.integrations._project_facts import ProjectFacts, project_facts
from controlplane.core.integrations._project_traits import (
    Kind,
    main_modules,
    project_kind,
    vcs_version,
)
from controlplane.core.integrations.generators_common import (
    FLASK_EXAMPLE,
    NODE_EXAMPLE,
    EnvName,
    existing,
    generator,
    output_field,
    render,
    render_facts,
    unsupported,
)


@dataclass(frozen=True)
class Service:
    """A backing service, and how the app reaches it in compose."""

    name: str
    image: str
    port: int
    url_var: str
    url: str
    environment: tuple[str, ...] = ()
    volume: str | None = None


SERVICES = {
    "redis": Service("redis", "redis:7-alpine", 6379, "REDIS_URL", "redis://redis:6379/0"),
    "postgres": Service("postgres", "postgres:16-alpine", 5432, "DATABASE_URL",
                        "postgresql://postgres@postgres:5432/app",
                        ("POSTGRES_DB=app", "POSTGRES_HOST_AUTH_METHOD=trust"),
                        "/var/lib/postgresql/data"),
    "mysql": Service("mysql", "mysql:8.4", 3306, "DATABASE_URL", "mysql://root@mysql:3306/app",
                     ("MYSQL_DATABASE=app", "MYSQL_ALLOW_EMPTY_PASSWORD=yes"), "/var/lib/mysql"),
    "mongodb": Service("mongodb", "mongo:7", 27017, "MONGODB_URL", "mongodb://mongodb:27017/app",
                       (), "/data/db"),
    "rabbitmq": Service("rabbitmq", "rabbitmq:3-management-alpine", 5672, "AMQP_URL",
                        "amqp://guest:guest@rabbitmq:5672/"),
}

ServiceName = Literal["redis", "postgres", "mysql", "mongodb", "rabbitmq"]
BASE_IMAGES = {"python": "python:{python_version}-slim", "node": "node:{node_version}-alpine",
               "go": "golang:{go_version}-alpine"}
# How a variable the code reads may name a service's URL (REDIS_URL, MONGO_URI…).
URL_PREFIXES = {"redis": ("REDIS", "CACHE"), "postgres": ("DATABASE", "POSTGRES", "PG", "DB"),
                "mysql": ("DATABASE", "MYSQL", "DB"), "mongodb": ("MONGO", "DATABASE"),
                "rabbitmq": ("AMQP", "RABBIT", "BROKER", "CELERY_BROKER")}
DEFAULT_OUTPUTS = {"dockerfile": "Dockerfile", "dockerignore": ".dockerignore",
                   "compose": "compose.yaml"}


class DockerfileParams(GenerateParams):
    output: ProjectPath = output_field("Dockerfile", "Dockerfile to write")
    base_image: ImageRef | None = Field(
        None, description="base image (default: the language's official image at the "
                          "project's version)")
    command: list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]] \
        | None = Field(None, min_length=1, max_length=30,
                       description="how the image starts (default: what the project declares; "
                                   "a library declares nothing)")
    port: int | None = Field(None, ge=1, le=65535,
                             description="port it listens on (default: found in the code, "
                                         "else none)")


class DockerignoreParams(GenerateParams):
    output: ProjectPath = output_field(".dockerignore", ".dockerignore to write")


class ComposeParams(GenerateParams):
    output: ProjectPath = output_field("compose.yaml", "compose file to write")


class ComposeWizardParams(ComposeParams):
    name: DNSName = Field(..., description="the app's service name")
    image: ImageRef | None = Field(None, description="image to run (default: build the project)")
    port: int = Field(8080, ge=1, le=65535, description="port the app listens on (published)")
    env: list[EnvName] = Field(default_factory=list, max_length=100,
                               description="variables passed through from the shell")
    services: list[ServiceName] = Field(default_factory=list, max_length=5,
                                        description="backing services to run beside the app")


class DockerWriteParams(BaseModel):
    kind: Literal["dockerfile", "dockerignore", "compose"] = Field(
        ..., description="which file to generate and write")
    output: ProjectPath | None = Field(None, max_length=300,
                                       description="where (default: Dockerfile, .dockerignore "
                                                   "or compose.yaml)")
    overwrite: bool = Field(False, description="replace an existing file")

    @property
    def write(self) -> bool:
        return True

    @property
    def target(self) -> str:
        return self.output or DEFAULT_OUTPUTS[self.kind]


def start_command(facts: ProjectFacts) -> list[str]:
    """How the image starts the app: the framework's server, the entry point, or npm start."""
    port, entry = str(facts.port), facts.entry_point
    module = entry[:-3].replace("/", ".") if entry and entry.endswith(".py") else None
    if facts.language == "node":
        return ["npm", "start"] if "start" in facts.node_scripts else ["node", entry or "index.js"]
    if facts.framework == "django":
        wsgi = next(facts.root.glob("*/wsgi.py"), None)
        if wsgi and facts.depends_on("gunicorn"):
            return ["gunicorn", f"{wsgi.parent.name}.wsgi", "--bind", f"0.0.0.0:{port}"]
        return ["python", "manage.py", "runserver", f"0.0.0.0:{port}"]
    if module and facts.framework == "fastapi" and facts.depends_on("uvicorn"):
        return ["uvicorn", f"{module}:app", "--host", "0.0.0.0", "--port", port]
    if module and facts.framework == "flask" and facts.depends_on("gunicorn"):
        return ["gunicorn", "--bind", f"0.0.0.0:{port}", f"{module}:app"]
    if entry:
        return ["python", entry]
    module = facts.name.replace("-", "_")
    return ["python", "-m", module] if module in main_modules(facts.root) else []


def run_command(facts: ProjectFacts, kind: Kind) -> list[str] | None:
    """How the project starts, only as far as its own files say (None for a library)."""
    if kind.kind == "library":
        return None
    if kind.command:
        return kind.command
    if facts.language == "go":
        return ["/app"]
    return start_command(facts) or None


def dockerfile(facts: ProjectFacts, base_image: str | None = None, *,
               command: list[str] | None = None, port: int | None = None,
               pretend_version: str | None = None) -> str | None:
    """The Dockerfile for the project's language, or None when it has no template."""
    if facts.language not in BASE_IMAGES:
        return None
    base = base_image or BASE_IMAGES[facts.language].format(**facts.as_template_vars())
    install = "npm ci" if "package-lock.json" in facts.manifests else "npm install"
    return render_facts(f"dockerfile_{facts.language}.j2", facts, base_image=base,
                        command=command if command is not None else start_command(facts),
                        install=install, port=port, pretend_version=pretend_version)


def latest_tag_version(ctx: ActionContext) -> str | None:
    """The project's latest release tag as a version (``v24.2.0`` → ``24.2.0``), if any."""
    described = ctx.tool(["git", "describe", "--tags", "--abbrev=0"])
    tag = described.stdout.strip() if described.ok else ""
    found = re.search(r"\d+(\.\d+)*([.-]?(a|b|rc|post|dev)\d*)*", tag)
    return found.group() if found else None


def url_var(service: str, names_read: list[str]) -> str:
    """The variable the code reads for *service*'s URL, else the service's usual one."""
    for name in names_read:
        if name.startswith(URL_PREFIXES[service]) and name.endswith(("_URL", "_URI", "_DSN")):
            return name
    return SERVICES[service].url_var


def compose(*, name: str, port: int | None, services: list[str], names_read: list[str],
            image: str | None = None, pass_through: tuple[str, ...] = (),
            env_file: bool = False) -> str:
    """A compose file: the app, the services it depends on, their URLs in its environment."""
    specs = [SERVICES[s] for s in dict.fromkeys(services)]
    environment = [f"{url_var(s.name, names_read)}={s.url}" for s in specs]
    if "PORT" in names_read and port:
        environment.append(f"PORT={port}")
    environment += [n for n in pass_through if not any(e.startswith(f"{n}=") for e in environment)]
    return render("compose.yaml.j2", name=name, image=image, port=port, services=specs,
                  environment=environment, env_file=env_file)


def compose_summary(content: str) -> dict[str, Any]:
    """The services of a rendered compose file (loading it also proves it parses)."""
    return {"services": list(yaml.safe_load(content)["services"])}


def project_compose(facts: ProjectFacts, port: int | None) -> str:
    """The project's compose file; *port* published (None: a command-line tool, no port)."""
    names = [v.name for v in facts.env_vars]
    set_by_compose = {url_var(s, names) for s in facts.services} | {"PORT"}
    return compose(name=facts.name, port=port, services=list(facts.services),
                   names_read=names, env_file=bool(set(names) - set_by_compose))


def generate_dockerfile(ctx: ActionContext, params: DockerfileParams) -> dict[str, Any]:
    """A Dockerfile on the project's language image (Python: the lowest version it supports;
    Node: the newest LTS its engines allow), installing it; its command and port only as the
    project declares them (a library has neither: send "command"). A version taken from git tags
    (setuptools-scm, hatch-vcs) is pinned, since .git is not sent to the build.
    """
    facts = project_facts(ctx.project_root)
    if facts.language not in BASE_IMAGES:
        return unsupported(facts, "Dockerfile")
    kind = project_kind(facts)
    command = params.command or run_command(facts, kind)
    if not command:
        return {"ok": False, "language": facts.language, "project_kind": kind.kind,
                "error": {"code": "nothing_to_run", "message": (
                    f"{facts.name} is a {kind.kind} ({kind.why}): an image needs a command "
                    "to run; send \"command\" (and \"port\" if it listens)")}}
    port = params.port or (kind.port if not params.command else None)
    notes: list[str] = []
    versioning = vcs_version(facts.root) if facts.language == "python" else None
    pretend = None
    if versioning:
        pretend = latest_tag_version(ctx) or "0.0.0"
        notes.append(f"{versioning} reads the version from git, which .dockerignore keeps out "
                     f"of the build: SETUPTOOLS_SCM_PRETEND_VERSION={pretend} (the latest tag)")
    if port is None:
        notes.append("no EXPOSE: the project declares no port it listens on (send \"port\")")
    content = dockerfile(facts, params.base_image, command=command, port=port,
                         pretend_version=pretend)
    assert content is not None
    base = next(line.split()[1] for line in content.splitlines() if line.startswith("FROM "))
    return {"ok": True, "language": facts.language, "project_kind": kind.kind, "base_image": base,
            "port": port, "command": command, "notes": notes,
            **deliver(ctx.project_root, params.output, content, params, "output")}


def generate_dockerignore(ctx: ActionContext, params: DockerignoreParams) -> dict[str, Any]:
    """A .dockerignore for the project's language; .env, .git and the ledger view are never sent to
    the build.
    """
    facts = project_facts(ctx.project_root)
    content = render_facts("dockerignore.j2", facts)
    return {"ok": True, "language": facts.language,
            **deliver(ctx.project_root, params.output, content, params, "output")}


def generate_compose(ctx: ActionContext, params: ComposeParams) -> dict[str, Any]:
    """A compose file with the app and the services its dependencies imply (redis, postgres, mysql,
    mongodb, rabbitmq), their URLs set; a port published only when the project listens on one.
    A library has nothing to run: refused (the compose wizard takes an image and a port).
    """
    facts = project_facts(ctx.project_root)
    kind = project_kind(facts)
    if kind.kind == "library":
        return {"ok": False, "language": facts.language, "project_kind": kind.kind,
                "error": {"code": "nothing_to_run", "message": (
                    f"{facts.name} is a library ({kind.why}): a compose service needs something "
                    "to run; use /docker/generate/compose-wizard with \"image\" and \"port\"")}}
    port = facts.port if kind.kind == "application" else None
    content = project_compose(facts, port)
    return {"ok": True, "language": facts.language, "project_kind": kind.kind, "port": port,
            **compose_summary(content),
            **deliver(ctx.project_root, params.output, content, params, "output")}


def generate_compose_wizard(ctx: ActionContext, params: ComposeWizardParams) -> dict[str, Any]:
    """A compose file from the wizard's answers: app, port, variables, backing services."""
    content = compose(name=params.name, port=params.port, services=list(params.services),
                      names_read=list(params.env), image=params.image,
                      pass_through=tuple(params.env))
    return {"ok": True, "port": params.port, **compose_summary(content),
            **deliver(ctx.project_root, params.output, content, params, "output")}


def write_generated(ctx: ActionContext, params: DockerWriteParams) -> dict[str, Any]:
    """Generates a Dockerfile, .dockerignore or compose file from the project and writes it
    (refuses to replace one without overwrite).
    """
    options: dict[str, Any] = {"output": params.target, "write": True,
                               "overwrite": params.overwrite}
    if params.kind == "dockerfile":
        answer = generate_dockerfile(ctx, DockerfileParams(**options))
    elif params.kind == "dockerignore":
        answer = generate_dockerignore(ctx, DockerignoreParams(**options))
    else:
        answer = generate_compose(ctx, ComposeParams(**options))
    return {"kind": params.kind, **answer}


register(
    generator(path="/docker/generate/dockerfile", subtype="generate:dockerfile",
              title="Generate Dockerfile", params=DockerfileParams, service=generate_dockerfile,
              example=Example(params={}, files=NODE_EXAMPLE,
                              expect={"language": "node", "base_image": "node:20-alpine",
                                      "port": 3000, "command": ["npm", "start"], "written": False},
                              invalid={"output": "../Dockerfile"}, invalid_field="output")),
    generator(path="/docker/generate/dockerignore", subtype="generate:dockerignore",
              title="Generate .dockerignore", params=DockerignoreParams,
              service=generate_dockerignore,
              example=Example(params={"write": True}, files=FLASK_EXAMPLE,
                              expect={"language": "python", "written": True,
                                      "path": ".dockerignore"},
                              invalid={"output": "/tmp/.dockerignore"}, invalid_field="output")),
    generator(path="/docker/generate/compose", subtype="generate:compose",
              title="Generate compose file", params=ComposeParams, service=generate_compose,
              example=Example(params={}, files=FLASK_EXAMPLE,
                              expect={"services": ["project", "redis"], "port": 5000},
                              invalid={"write": "sometimes"}, invalid_field="write")),
    generator(path="/docker/generate/compose-wizard", subtype="generate:compose_wizard",
              title="Wizard compose", params=ComposeWizardParams, service=generate_compose_wizard,
              example=Example(params={"name": "shop", "port": 8000, "services": ["postgres"],
                                      "env": ["SECRET_KEY"]},
                              expect={"services": ["shop", "postgres"], "written": False},
                              invalid={"services": ["oracle"]}, invalid_field="services.0")),
    generator(path="/docker/generate/write", subtype="generate:docker_write",
              title="Write generated file", params=DockerWriteParams, service=write_generated,
              lock_key="generate:{kind}", conflicts=existing("target"),
              example=Example(params={"kind": "compose"}, files=NODE_EXAMPLE,
                              expect={"kind": "compose", "written": True, "path": "compose.yaml",
                                      "services": ["orders", "postgres"]},
                              invalid={"kind": "helmchart"}, invalid_field="kind")),
)
