"""Docker: build, pull, exec, rm, rmi and prune with the docker CLI; compose up, down, restart.

Compose is the v2 plugin (``docker compose --file=… --project-name=…``); without it the
run fails with ``tool_missing``. A build's image id comes from ``--iidfile``, compose's
containers from ``ps --format=json``. No engine to talk to is ``tool_unavailable`` with
docker's own "Cannot connect to the Docker daemon".
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from controlplane.core.actions import Action, ActionContext, Example, ProjectPath, register
from controlplane.core.integrations._cli_tools import (
    ImageRef,
    Name,
    call_cli,
    flag_values,
    json_documents,
    nonblank_lines,
    option,
    project_operand,
    switches,
    tail,
)
from controlplane.core.tools import ToolResult

ArgName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
ProjectName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                                   description="compose project name (default: the directory)")]
Platform = Annotated[str, Field(pattern=r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$",
                                description="target platform, e.g. linux/amd64")]
IMAGE_ID = re.compile(r"(?:writing image|Successfully built) (sha256:[0-9a-f]{64}|[0-9a-f]{12})")
REMOVED = re.compile(r"^\s*(Container|Network|Volume|Image) (\S+)\s+Removed\s*$", re.MULTILINE)
NO_COMPOSE = re.compile(r"unknown (shorthand )?flag|unknown command: docker compose|"
                        r"'compose' is not a docker command")


# --- images ---------------------------------------------------------------------------------

class BuildParams(BaseModel):
    context: ProjectPath = Field(".", min_length=1, max_length=300,
                                 description="build context directory inside the project")
    dockerfile: ProjectPath | None = Field(None, max_length=300,
                                           description="Dockerfile (default: <context>/Dockerfile)")
    tags: list[ImageRef] = Field(default_factory=list, max_length=20,
                                 description="tags for the image, e.g. app:1.0")
    build_args: dict[ArgName, str] = Field(default_factory=dict, max_length=100,
                                           description="build-time variables (--build-arg)")
    target: Name | None = Field(None, description="stage to build (--target)")
    pull: bool = Field(False, description="always pull newer base images")
    no_cache: bool = Field(False, description="build without the cache")


def build(ctx: ActionContext, params: BuildParams) -> dict[str, Any]:
    """``docker build --iidfile``; the image id and tags."""
    with tempfile.TemporaryDirectory(prefix="scp-docker-") as tmp:
        iidfile = Path(tmp) / "image.id"
        argv = ["docker", "build", f"--iidfile={iidfile}"]
        if params.dockerfile:
            argv.append(f"--file={project_operand(ctx.project_root, params.dockerfile, 'file')}")
        argv += flag_values("--tag", params.tags)
        argv += flag_values("--build-arg", [f"{k}={v}" for k, v in params.build_args.items()])
        argv += option("--target", params.target)
        argv += [*switches(params, pull="--pull", no_cache="--no-cache"), "--",
                 project_operand(ctx.project_root, params.context, "context")]
        answer, result = call_cli(ctx, argv)
        image_id = iidfile.read_text().strip() if iidfile.exists() else None
    if answer["ok"] and not image_id:  # no iidfile (an old client): docker said it too
        found = IMAGE_ID.findall(f"{result.stdout}\n{result.stderr}")
        image_id = found[-1] if found else None
    return {**answer, "image_id": image_id, "tags": params.tags}


class PullParams(BaseModel):
    image: ImageRef = Field(..., description="image to pull, e.g. redis:7")
    platform: Platform | None = Field(None, description="platform, e.g. linux/arm64")


def pull(ctx: ActionContext, params: PullParams) -> dict[str, Any]:
    """``docker pull``; the digest and whether anything new came."""
    def parse(stdout: str) -> dict[str, Any]:
        digest = re.search(r"^Digest: (sha256:[0-9a-f]{64})", stdout, re.MULTILINE)
        status = re.search(r"^Status: (.*)$", stdout, re.MULTILINE)
        return {"image": params.image, "digest": digest and digest.group(1),
                "pull_status": status and status.group(1),
                "updated": bool(status and "Downloaded newer image" in status.group(1))}

    argv = ["docker", "pull", *option("--platform", params.platform), "--", params.image]
    return call_cli(ctx, argv, parse=parse)[0]


class RmiParams(BaseModel):
    images: list[ImageRef] = Field(..., min_length=1, max_length=50,
                                   description="images (names or ids) to remove")
    force: bool = Field(False, description="remove even if containers use them")
    no_prune: bool = Field(False, description="keep untagged parent images")


def rmi(ctx: ActionContext, params: RmiParams) -> dict[str, Any]:
    """``docker rmi``; what was untagged and deleted."""
    def parse(stdout: str) -> dict[str, Any]:
        said = [line.split(": ", 1) for line in nonblank_lines(stdout) if ": " in line]
        return {"untagged": [v for k, v in said if k == "Untagged"],
                "deleted": [v for k, v in said if k == "Deleted"]}

    argv = ["docker", "rmi", *switches(params, force="--force", no_prune="--no-prune"), "--",
            *params.images]
    return call_cli(ctx, argv, parse=parse)[0]


class PruneParams(BaseModel):
    scope: Literal["system", "container", "image", "volume", "network", "builder"] = Field(
        "image", description="what to prune")
    all: bool = Field(False, description="also unused (not only dangling) images / volumes")
    volumes: bool = Field(False, description="system prune: also volumes")
    until: str | None = Field(None, pattern=r"^[0-9]{1,6}[smh]$",
                              description="only what was created before this long ago, e.g. 24h")


def parse_prune(stdout: str) -> dict[str, Any]:
    """``docker … prune``: the ids under its ``Deleted …:`` headings and the space won."""
    reclaimed = re.search(r"^Total reclaimed space: (.+)$", stdout, re.MULTILINE)
    removed = [line.split(": ")[-1] for line in nonblank_lines(stdout)
               if not line.endswith(":") and not line.startswith("Total reclaimed space")]
    return {"removed": removed, "reclaimed": reclaimed and reclaimed.group(1)}


def prune(ctx: ActionContext, params: PruneParams) -> dict[str, Any]:
    """``docker <scope> prune --force``."""
    argv = ["docker", params.scope, "prune", "--force", *switches(params, all="--all")]
    argv += ["--volumes"] if params.volumes and params.scope == "system" else []
    argv += option("--filter", params.until and f"until={params.until}")
    return {**call_cli(ctx, argv, parse=parse_prune)[0], "scope": params.scope}


# --- containers -----------------------------------------------------------------------------

class ExecParams(BaseModel):
    container: Name = Field(..., description="container name or id")
    command: list[Annotated[str, Field(max_length=4000, pattern=r"^[^\x00]*$")]] = Field(
        ..., min_length=1, max_length=100, description="the command and its arguments, a list")
    workdir: str | None = Field(None, pattern=r"^/[^\x00]{0,300}$",
                                description="working directory inside the container")
    user: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_]"
                                           r"[A-Za-z0-9_.-]{0,31})?$", description="user[:group]")
    env: dict[ArgName, str] = Field(default_factory=dict, max_length=100,
                                    description="environment variables for the command")


def exec_in(ctx: ActionContext, params: ExecParams) -> dict[str, Any]:
    """``docker exec [options] -- <container> <command…>``; the command's output."""
    argv = ["docker", "exec", *option("--workdir", params.workdir), *option("--user", params.user)]
    argv += flag_values("--env", [f"{k}={v}" for k, v in params.env.items()])
    answer, result = call_cli(ctx, [*argv, "--", params.container, *params.command])
    return {**answer, "container": params.container, "output": tail(result.stdout)}


class RmParams(BaseModel):
    containers: list[Name] = Field(..., min_length=1, max_length=50,
                                   description="containers (names or ids) to remove")
    force: bool = Field(False, description="also remove running containers (kills them)")
    volumes: bool = Field(False, description="also remove their anonymous volumes")


def rm(ctx: ActionContext, params: RmParams) -> dict[str, Any]:
    """``docker rm``; the containers removed."""
    argv = ["docker", "rm", *switches(params, force="--force", volumes="--volumes"), "--",
            *params.containers]
    return call_cli(ctx, argv, parse=lambda out: {"removed": nonblank_lines(out)})[0]


# --- compose --------------------------------------------------------------------------------

class ComposeParams(BaseModel):
    file: ProjectPath | None = Field(None, max_length=300,
                                     description="compose file (default: compose.yaml & co.)")
    project_name: ProjectName | None = Field(None, description="compose project name "
                                                   "(default: the directory's name)")


class ServicesParams(ComposeParams):
    services: list[Name] = Field(default_factory=list, max_length=100,
                                 description="only these services (default: all)")


def compose(ctx: ActionContext, params: ComposeParams, *args: str,
            parse: Any = None) -> tuple[dict[str, Any], ToolResult]:
    """``docker compose [--file=] [--project-name=] <args>``; no plugin is ``tool_missing``."""
    file = params.file and project_operand(ctx.project_root, params.file, "file")
    argv = ["docker", "compose", "--ansi=never", *option("--file", file),
            *option("--project-name", params.project_name)]
    answer, result = call_cli(ctx, [*argv, *args], parse=parse,
                              compose_project=params.project_name)
    if result.exit_code and NO_COMPOSE.search(result.stderr):
        answer["error"] = {"code": "tool_missing", "message": "docker compose (the v2 plugin) "
                           "is not installed; install docker-compose-plugin"}
    return answer, result


def containers(stdout: str) -> dict[str, Any]:
    """``compose ps --format=json``: a JSON array (older v2) or one object per line."""
    found = [c for doc in json_documents(stdout) for c in (doc if isinstance(doc, list) else [doc])]
    return {"containers": [{"name": c.get("Name"), "service": c.get("Service"),
                            "state": c.get("State"), "status": c.get("Status")} for c in found]}


def with_containers(ctx: ActionContext, params: ServicesParams, *args: str) -> dict[str, Any]:
    """Run a compose command, then list the project's containers as compose sees them."""
    answer, _ = compose(ctx, params, *args, "--", *params.services)
    if answer["ok"]:
        listed, _ = compose(ctx, params, "ps", "--all", "--format=json", parse=containers)
        answer["containers"] = listed.get("containers", [])
    return answer


class UpParams(ServicesParams):
    build: bool = Field(False, description="build images before starting")
    wait: bool = Field(False, description="wait until services are running/healthy")
    remove_orphans: bool = Field(False, description="remove containers of dropped services")


def up(ctx: ActionContext, params: UpParams) -> dict[str, Any]:
    """``docker compose up --detach``; the containers afterwards."""
    flags = switches(params, build="--build", wait="--wait", remove_orphans="--remove-orphans")
    return with_containers(ctx, params, "up", "--detach", *flags)


class RestartParams(ServicesParams):
    timeout: int = Field(10, ge=0, le=3600, description="seconds to wait before killing")


def restart(ctx: ActionContext, params: RestartParams) -> dict[str, Any]:
    """``docker compose restart``; the containers afterwards."""
    return with_containers(ctx, params, "restart", f"--timeout={params.timeout}")


class DownParams(ComposeParams):
    volumes: bool = Field(False, description="also remove named and anonymous volumes")
    remove_orphans: bool = Field(False, description="remove containers of dropped services")
    rmi: Literal["local", "all"] | None = Field(None, description="also remove images")


def down(ctx: ActionContext, params: DownParams) -> dict[str, Any]:
    """``docker compose down``; what compose reports removed (its progress goes to stderr)."""
    args = switches(params, volumes="--volumes", remove_orphans="--remove-orphans")
    answer, result = compose(ctx, params, "down", *args, *option("--rmi", params.rmi))
    removed = REMOVED.findall(f"{result.stderr}\n{result.stdout}")
    return {**answer, "removed": [{"kind": kind.lower(), "name": name} for kind, name in removed]}


# --- declarations ---------------------------------------------------------------------------

DIGEST = "sha256:" + "5f" * 32
PS = '{"Name":"shop-web-1","Service":"web","State":"running","Status":"Up 2 seconds"}\n'
COMPOSE = {"compose.yaml": "services:\n  web:\n    build: .\n", "Dockerfile": "FROM python:3\n"}
STACK = "docker-compose:{project_name}"
WEB = {"name": "shop-web-1", "service": "web", "state": "running", "status": "Up 2 seconds"}


def _action(verb: str, subtype: str, title: str, service: Any, example: Example,
            **extra: Any) -> Action:
    """``/docker/<verb>``, described by its service's docstring."""
    return Action(path=f"/docker/{verb}", subtype=subtype, title=title, service=service,
                  example=example, description=service.__doc__ or "", **extra)


register(
    _action("build", "build:docker", "Docker build", build, Example(
        params={"tags": ["shop:1.0"], "build_args": {"PY": "3.12"}}, tool="docker", files=COMPOSE,
        tool_output=f"#8 writing image {DIGEST} done\n", expect={"image_id": DIGEST},
        argv=("build", "*", "--tag=shop:1.0", "--build-arg=PY=3.12", "--", "."),
        invalid={"context": "../.."}, invalid_field="context"), params=BuildParams),
    _action("up", "deploy:docker_up", "Compose up", up, Example(
        params={"project_name": "shop", "file": "compose.yaml", "build": True}, tool="docker",
        files=COMPOSE, tool_output=PS, expect={"containers": [WEB]},
        argv=("compose", "--ansi=never", "--file=compose.yaml", "--project-name=shop", "up",
              "--detach", "--build", "--"),
        invalid={"project_name": "-rf"}, invalid_field="project_name"),
        params=UpParams, lock_key=STACK, writes=True),  # bind mounts write into the tree
    _action("down", "destroy:docker_down", "Compose down", down, Example(
        params={"project_name": "shop", "volumes": True}, tool="docker",
        tool_output=" Container shop-web-1  Removed\n Network shop_default  Removed\n",
        argv=("compose", "--ansi=never", "--project-name=shop", "down", "--volumes"),
        expect={"removed": [{"kind": "container", "name": "shop-web-1"},
                            {"kind": "network", "name": "shop_default"}]},
        invalid={"rmi": "everything"}, invalid_field="rmi"),
        params=DownParams, lock_key=STACK, destructive=True, writes=True),
    _action("restart", "deploy:docker_restart", "Compose restart", restart, Example(
        params={"services": ["web"], "timeout": 5}, tool="docker", tool_output=PS,
        argv=("compose", "--ansi=never", "restart", "--timeout=5", "--", "web"),
        expect={"containers": [WEB]}, invalid={"services": ["--upload-pack=touch pwned"]},
        invalid_field="services.0"), params=RestartParams, lock_key=STACK, writes=True),
    _action("prune", "destroy:docker_prune", "Docker prune", prune, Example(
        params={"all": True, "until": "24h"}, tool="docker",
        tool_output=f"Deleted Images:\nuntagged: shop:0.9\ndeleted: {DIGEST}\n\n"
                    "Total reclaimed space: 12.5MB\n",
        argv=("image", "prune", "--force", "--all", "--filter=until=24h"),
        expect={"removed": ["shop:0.9", DIGEST], "reclaimed": "12.5MB"},
        invalid={"until": "1; rm -rf /"}, invalid_field="until"),
        params=PruneParams, destructive=True),
    _action("pull", "install:docker_pull", "Pull image", pull, Example(
        params={"image": "redis:7"}, tool="docker", argv=("pull", "--", "redis:7"),
        tool_output=f"Digest: {DIGEST}\nStatus: Downloaded newer image for redis:7\n",
        expect={"digest": DIGEST, "updated": True},
        invalid={"image": "--upload-pack=touch pwned"}, invalid_field="image"),
        params=PullParams),
    _action("exec", "test:docker_exec", "Execute in container", exec_in, Example(
        params={"container": "shop-web-1", "command": ["python", "-V"]}, tool="docker",
        tool_output="Python 3.12.3\n", argv=("exec", "--", "shop-web-1", "python", "-V"),
        expect={"output": "Python 3.12.3\n"}, invalid={"container": "-rf"},
        invalid_field="container"), params=ExecParams, lock_key="docker:{container}",
        writes=True),
    _action("rm", "destroy:docker_rm", "Remove container", rm, Example(
        params={"containers": ["shop-web-1"], "force": True}, tool="docker",
        tool_output="shop-web-1\n", argv=("rm", "--force", "--", "shop-web-1"),
        expect={"removed": ["shop-web-1"]}, invalid={"containers": []},
        invalid_field="containers"), params=RmParams, destructive=True),
    _action("rmi", "destroy:docker_rmi", "Remove image", rmi, Example(
        params={"images": ["shop:0.9"]}, tool="docker", argv=("rmi", "--", "shop:0.9"),
        tool_output=f"Untagged: shop:0.9\nDeleted: {DIGEST}\n", expect={"deleted": [DIGEST]},
        invalid={"images": ["-f"]}, invalid_field="images.0"), params=RmiParams, destructive=True),
)
