"""Terraform: init, validate, plan, apply, destroy, workspace select and fmt.

Runs are non-interactive (``-input=false``, ``TF_INPUT=0``, ``TF_IN_AUTOMATION``); the
workspace is chosen through ``TF_WORKSPACE`` and variables through ``TF_VAR_<name>``,
never argv. Machine-readable output is parsed: ``-json`` streams (init, apply,
destroy), ``validate -json``, and the saved plan through ``terraform show -json``,
whose file is kept under ``.git/scp/plans/`` as the run's artifact with its hash.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from controlplane.core import redact
from controlplane.core.actions import (
    Action,
    ActionContext,
    Example,
    ProjectPath,
    project_path,
    register,
)
from controlplane.core.integrations._cli_tools import (
    Name,
    call_cli,
    file_sha256,
    flag_values,
    json_documents,
    project_operand,
    switches,
    with_env,
)
from controlplane.core.integrations._terraform_sensitive import mask_plan, sensitive_variables
from controlplane.core.ledger.ledger import find_git_dir
from controlplane.core.redact import MASK
from controlplane.core.tools import ToolResult

STORED_MASKS = {MASK, "**********"}  # what a stored run holds instead of a sensitive value

VarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")]


class Config(BaseModel):
    dir: ProjectPath = Field(".", min_length=1, max_length=300,
                             description="directory of the Terraform configuration")


class Workspace(Config):
    workspace: Name | None = Field(None, description="workspace (default: the selected one)")


class Variables(Workspace):
    vars: dict[VarName, str] = Field(default_factory=dict, max_length=100,
                                     description="input variables (passed as TF_VAR_<name>); "
                                     "those declared sensitive are never stored")
    var_files: list[ProjectPath] = Field(default_factory=list, max_length=20,
                                         description="variable files (.tfvars) in the project")
    _sensitive: frozenset[str] = PrivateAttr(default=frozenset())

    @field_validator("vars")
    @classmethod
    def _real_sensitive_values(cls, values: dict[str, str],
                               info: ValidationInfo) -> dict[str, str]:
        """A sensitive variable's value is registered with the redactor; a stored mask
        (a rerun) is refused."""
        names = _declared_sensitive(info.context, info.data.get("dir"), values)
        masked = sorted(name for name in names if values[name] in STORED_MASKS)
        if masked:
            raise ValueError(f"{masked[0]} is declared sensitive: send its real value "
                             "(a stored run keeps none)")
        redact.redactor.register_many(values[name] for name in names)
        return values

    @model_validator(mode="after")
    def _mark_sensitive(self, info: ValidationInfo) -> Variables:
        self._sensitive = frozenset(_declared_sensitive(info.context, self.dir, self.vars))
        return self

    @field_serializer("vars", when_used="json")
    def _stored_vars(self, values: dict[str, str]) -> dict[str, str]:
        return {name: MASK if name in self._sensitive else value
                for name, value in values.items()}


def _declared_sensitive(context: dict[str, Any] | None, config_dir: str | None,
                        values: dict[str, str]) -> set[str]:
    """Which of *values* the configuration in *config_dir* declares ``sensitive``."""
    root = (context or {}).get("project_root")
    if root is None or config_dir is None or not values:
        return set()
    return sensitive_variables(Path(root) / config_dir) & set(values)


def terraform(ctx: ActionContext, params: Config, *args: str) -> list[str]:
    """``terraform [-chdir=<dir>] <args>``."""
    where = project_operand(ctx.project_root, params.dir, "dir")
    return ["terraform", *([] if where == "." else [f"-chdir={where}"]), *args]


def tf_context(ctx: ActionContext, params: Config) -> ActionContext:
    """The tools' environment: non-interactive, plus the workspace and the variables."""
    env = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    if isinstance(params, Workspace) and params.workspace:
        env["TF_WORKSPACE"] = params.workspace
    if isinstance(params, Variables):
        env.update({f"TF_VAR_{name}": value for name, value in params.vars.items()})
    return with_env(ctx, **env)


def var_file_flags(ctx: ActionContext, params: Variables) -> list[str]:
    # -chdir changes how terraform reads relative paths: give it absolute ones
    return flag_values("-var-file", [str(project_path(ctx.project_root, f, "var_files"))
                                     for f in params.var_files])


def ui_messages(stdout: str) -> dict[str, Any]:
    """A ``-json`` UI stream: change summary, outputs, diagnostics and the last message."""
    answer: dict[str, Any] = {"diagnostics": []}
    for message in json_documents(stdout):
        kind = message.get("type")
        if kind == "change_summary":
            changes = message["changes"]
            answer.update(add=changes["add"], change=changes["change"], destroy=changes["remove"])
        elif kind == "outputs":
            answer["outputs"] = {name: None if out.get("sensitive") else out.get("value")
                                 for name, out in message["outputs"].items()}
        elif kind == "diagnostic":
            answer["diagnostics"].append(diagnostic(message["diagnostic"]))
        if message.get("@message"):
            answer["message"] = message["@message"]
    errors = [d for d in answer["diagnostics"] if d["severity"] == "error"]
    if errors:
        answer["error"] = {"code": "terraform_error", "message": errors[0]["summary"]}
    return answer


def tf_call(ctx: ActionContext, params: Config, args: list[str],
            **options: Any) -> tuple[dict[str, Any], ToolResult]:
    """``terraform [-chdir] <args>`` in the environment *params* ask for."""
    return call_cli(tf_context(ctx, params), terraform(ctx, params, *args),
                    workspace=getattr(params, "workspace", None), **options)


def streamed(ctx: ActionContext, params: Config, *args: str) -> dict[str, Any]:
    """A command with a ``-json`` UI stream, parsed whether it succeeds or fails."""
    return tf_call(ctx, params, list(args), parse=ui_messages, parse_failure=True)[0]


def diagnostic(item: dict[str, Any]) -> dict[str, Any]:
    where = item.get("range") or {}
    return {"severity": item.get("severity"), "summary": item.get("summary"),
            "detail": item.get("detail"), "file": where.get("filename"),
            "line": (where.get("start") or {}).get("line")}


# --- services -------------------------------------------------------------------------------

class InitParams(Workspace):
    upgrade: bool = Field(False, description="upgrade modules and providers (-upgrade)")
    backend: bool = Field(True, description="initialise the backend (off: -backend=false)")
    reconfigure: bool = Field(False, description="ignore the saved backend configuration")


def init(ctx: ActionContext, params: InitParams) -> dict[str, Any]:
    """``terraform init -json``; initialised or the diagnostics."""
    args = ["init", "-input=false", "-no-color", "-json",
            *switches(params, upgrade="-upgrade", reconfigure="-reconfigure")]
    return streamed(ctx, params, *args, *([] if params.backend else ["-backend=false"]))


def parse_validate(stdout: str) -> dict[str, Any]:
    report = json_documents(stdout)[0]
    found = [diagnostic(d) for d in report["diagnostics"]]
    answer = {"valid": report["valid"], "error_count": report["error_count"],
              "warning_count": report["warning_count"], "diagnostics": found}
    errors = [d["summary"] for d in found if d["severity"] == "error"] or ["not valid"]
    if not report["valid"]:
        answer.update(ok=False, error={"code": "invalid", "message": errors[0]})
    return answer


def validate(ctx: ActionContext, params: Config) -> dict[str, Any]:
    """``terraform validate -json``: valid, error and warning counts, diagnostics."""
    return tf_call(ctx, params, ["validate", "-json", "-no-color"], parse=parse_validate,
                   parse_failure=True)[0]


class PlanParams(Variables):
    destroy: bool = Field(False, description="plan to destroy everything (-destroy)")


def plan_counts(plan: dict[str, Any]) -> dict[str, Any]:
    """``terraform show -json <plan>``: add/change/destroy counted as terraform counts them."""
    counts = {"add": 0, "change": 0, "destroy": 0}
    changed = []
    for item in plan.get("resource_changes") or []:
        actions = item["change"]["actions"]
        counts["add"] += "create" in actions
        counts["change"] += "update" in actions
        counts["destroy"] += "delete" in actions
        if set(actions) - {"no-op", "read"}:
            changed.append({"address": item["address"], "actions": actions})
    outputs = [name for name, out in (plan.get("output_changes") or {}).items()
               if set(out["actions"]) != {"no-op"}]
    return {**counts, "resources": changed[:200], "output_changes": outputs,
            "applyable": plan.get("applyable")}


class _HeldOutput:
    """A run sink that holds a tool's lines back until they can be masked."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.lines: list[tuple[str, str]] = []
        self.target: dict[str, Any] = run.target if run is not None else {}
        self.cancel_requested: threading.Event = getattr(run, "cancel_requested", None) \
            or threading.Event()

    def output(self, line: str, stream: str = "stdout") -> None:
        self.lines.append((line, stream))

    # the rest of the run reporter contract passes through to the run
    @property
    def run_id(self) -> str:
        return str(getattr(self.run, "run_id", ""))

    @property
    def summary(self) -> str:
        return str(getattr(self.run, "summary", ""))

    @summary.setter
    def summary(self, text: str) -> None:
        if self.run is not None:
            self.run.summary = text

    def progress(self, done: int, total: int) -> None:
        if self.run is not None:
            self.run.progress(done, total)

    def add_artifact(self, path: str, sha256: str | None = None, **info: Any) -> None:
        if self.run is not None:
            self.run.add_artifact(path, sha256, **info)

    def fail(self, code: str, message: str) -> None:
        if self.run is not None:
            self.run.fail(code, message)

    def attach_process(self, pid: int, pgid: int) -> None:
        if self.run is not None:
            self.run.attach_process(pid, pgid)

    def detach_process(self, pid: int) -> None:
        if self.run is not None:
            self.run.detach_process(pid)

    def release(self, stdout: str | None) -> None:
        """Pass the held stderr lines on, and *stdout* instead of the tool's stdout."""
        if self.run is None:
            return
        if stdout is not None:
            self.run.output(stdout)
        elif any(stream == "stdout" for _, stream in self.lines):
            self.run.output("[terraform show output withheld: not understood, so sensitive "
                            "values could not be found in it]")
        for line, stream in self.lines:
            if stream != "stdout":
                self.run.output(line, stream)


def show_plan(ctx: ActionContext, params: Config, plan_file: Path) -> dict[str, Any]:
    """``terraform show -json <plan>`` counted; its output reaches the run only with every
    sensitive value masked (and registered with the redactor)."""
    sensitive = sensitive_variables(project_path(ctx.project_root, params.dir, "dir"))
    held = _HeldOutput(ctx.run)
    shown_json: list[str] = []

    def parse(stdout: str) -> dict[str, Any]:
        try:
            masked, found = mask_plan(json_documents(stdout)[0], sensitive)
        except RecursionError:
            raise ValueError("the plan is nested too deeply") from None
        redact.redactor.register_many(found)
        shown_json.append(json.dumps(masked, separators=(",", ":")))
        return plan_counts(masked)

    try:
        shown, _ = tf_call(dataclasses.replace(ctx, run=held), params,
                           ["show", "-json", "-no-color", str(plan_file)], parse=parse)
    finally:
        held.release(shown_json[0] if shown_json else None)
    return shown


def plan(ctx: ActionContext, params: PlanParams) -> dict[str, Any]:
    """``terraform plan -out`` to a saved plan (kept as the run's artifact), then counted."""
    plans = find_git_dir(ctx.project_root)[1] / "scp" / "plans"
    plans.mkdir(mode=0o700, parents=True, exist_ok=True)
    plans.chmod(0o700)  # saved plans hold sensitive values: the owner's alone
    plan_file = plans / f"{getattr(ctx.run, 'run_id', None) or int(time.time())}.tfplan"
    args = ["plan", "-input=false", "-no-color", f"-out={plan_file}", "-detailed-exitcode"]
    args += switches(params, destroy="-destroy") + var_file_flags(ctx, params)
    answer, result = tf_call(ctx, params, args, exit_codes=(0, 2))
    if plan_file.exists():
        plan_file.chmod(0o600)
    if not answer["ok"]:
        return answer
    shown = show_plan(ctx, params, plan_file)
    answer.update({k: v for k, v in shown.items() if k not in ("argv", "exit_code")})
    root = ctx.project_root.resolve()  # the path a later apply names it by, when inside
    shown_as = plan_file.relative_to(root) if plan_file.is_relative_to(root) else plan_file
    answer.update(changes_present=result.exit_code == 2, plan_file=shown_as.as_posix(),
                  sha256=file_sha256(plan_file))
    if answer["sha256"] and ctx.run is not None:
        ctx.run.add_artifact(answer["plan_file"], answer["sha256"], kind="terraform_plan")
    return answer


class ApplyParams(Variables):
    plan: ProjectPath | None = Field(None, max_length=300, description="a saved plan to apply "
                                     "(e.g. the plan_file of a plan run)")


def apply(ctx: ActionContext, params: ApplyParams) -> dict[str, Any]:
    """``terraform apply -auto-approve`` (of a saved plan when given); counts from ``-json``."""
    args = ["apply", "-auto-approve", "-input=false", "-no-color", "-json"]
    if params.plan:
        args.append(str(project_path(ctx.project_root, params.plan, "plan")))
    else:
        args += var_file_flags(ctx, params)
    return streamed(ctx, params, *args)


def destroy(ctx: ActionContext, params: Variables) -> dict[str, Any]:
    """``terraform destroy -auto-approve``; what was destroyed, from ``-json``."""
    return streamed(ctx, params, "destroy", "-auto-approve", "-input=false", "-no-color", "-json",
                    *var_file_flags(ctx, params))


class SelectParams(Config):
    workspace: Name = Field(..., description="workspace to switch to")
    create: bool = Field(False, description="create it if it does not exist (-or-create)")


def select_workspace(ctx: ActionContext, params: SelectParams) -> dict[str, Any]:
    """``terraform workspace select [-or-create] -- <name>``."""
    args = ["workspace", "select", "-no-color", *switches(params, create="-or-create=true"),
            "--", params.workspace]
    # no TF_WORKSPACE here: terraform refuses to select while it is set
    return tf_call(ctx, params, args, parse=lambda out: {
        "workspace": params.workspace, "created": "Created and switched" in out})[0]


class FmtParams(Config):
    check: bool = Field(False, description="only check; list the files that need formatting")
    recursive: bool = Field(True, description="also format subdirectories")


def fmt(ctx: ActionContext, params: FmtParams) -> dict[str, Any]:
    """``terraform fmt -list=true``: the files rewritten (or, with check, to rewrite)."""
    args = ["fmt", "-no-color", "-list=true",
            *switches(params, check="-check", recursive="-recursive")]
    where = Path(project_operand(ctx.project_root, params.dir, "dir"))

    def parse(stdout: str) -> dict[str, Any]:
        files = [(where / line.strip()).as_posix() for line in stdout.splitlines() if line.strip()]
        answer: dict[str, Any] = {"files": files, "check": params.check}
        if params.check and files:
            answer.update(ok=False, error={"code": "unformatted",
                                           "message": f"{len(files)} file(s) need terraform fmt"})
        return answer

    return tf_call(ctx, params, args, parse=parse, parse_failure=params.check)[0]


# --- declarations ---------------------------------------------------------------------------

FILES = {"infra/main.tf": 'locals {\n  greeting = "hi"\n}\n\noutput "greeting" {\n'
                          '  value = local.greeting\n}\n'}
STREAM = ('{"@message":"Apply complete! Resources: 1 added, 0 changed, 0 destroyed.","type":'
          '"change_summary","changes":{"add":1,"change":0,"import":0,"remove":0}}\n'
          '{"@message":"Outputs: 1","type":"outputs","outputs":{"greeting":{"value":"hi"}}}\n')
SHOWN = ('{"format_version":"1.2","resource_changes":[{"address":"null_resource.a","change":'
         '{"actions":["create"]}},{"address":"null_resource.b","change":{"actions":["delete",'
         '"create"]}}],"output_changes":{"greeting":{"actions":["create"]}},"applyable":true}')
LOCK = "terraform:{workspace}"
INIT_DONE = "Terraform has been successfully initialized!"

register(
    Action(path="/terraform/init", writes=True, subtype="setup:terraform", title="Terraform init",
           params=InitParams, service=init, lock_key=LOCK, description=init.__doc__ or "",
           example=Example(
               params={"dir": "infra", "upgrade": True}, tool="terraform", files=FILES,
               tool_output=f'{{"@message":"{INIT_DONE}","type":"init_output"}}\n',
               argv=("-chdir=infra", "init", "-input=false", "-no-color", "-json", "-upgrade"),
               expect={"message": INIT_DONE}, invalid={"workspace": "-rf"},
               invalid_field="workspace")),
    Action(path="/terraform/validate", subtype="validate:terraform", title="Terraform validate",
           params=Config, service=validate, description=validate.__doc__ or "",
           example=Example(
               params={"dir": "infra"}, tool="terraform", files=FILES,
               tool_output='{"valid":true,"error_count":0,"warning_count":0,"diagnostics":[]}',
               argv=("-chdir=infra", "validate", "-json", "-no-color"),
               expect={"valid": True, "error_count": 0}, invalid={"dir": "../elsewhere"},
               invalid_field="dir")),
    Action(path="/terraform/plan", writes=True, subtype="plan:terraform", title="Terraform plan",
           params=PlanParams, service=plan, lock_key=LOCK, description=plan.__doc__ or "",
           example=Example(
               params={"dir": "infra", "workspace": "staging", "vars": {"region": "eu-west-1"}},
               tool="terraform", files=FILES, tool_output=SHOWN,
               argv=("-chdir=infra", "show", "-json", "-no-color", "*"),
               expect={"add": 2, "change": 0, "destroy": 1, "output_changes": ["greeting"]},
               invalid={"var_files": ["../secret.tfvars"]}, invalid_field="var_files.0")),
    Action(path="/terraform/apply", subtype="deploy:terraform", title="Terraform apply",
           writes=True,
           params=ApplyParams, service=apply, lock_key=LOCK, destructive=True,
           description=apply.__doc__ or "",
           example=Example(
               params={"workspace": "staging"}, tool="terraform", files=FILES,
               tool_output=STREAM, expect={"add": 1, "outputs": {"greeting": "hi"}},
               argv=("apply", "-auto-approve", "-input=false", "-no-color", "-json"),
               invalid={"plan": "/tmp/other.tfplan"}, invalid_field="plan")),
    Action(path="/terraform/destroy", subtype="destroy:terraform", title="Terraform destroy",
           writes=True,
           params=Variables, service=destroy, lock_key=LOCK, destructive=True,
           description=destroy.__doc__ or "",
           example=Example(
               params={"dir": "infra"}, tool="terraform", files=FILES, tool_output=STREAM,
               argv=("-chdir=infra", "destroy", "-auto-approve", "-input=false", "-no-color",
                     "-json"),
               expect={"add": 1}, invalid={"workspace": "--upload-pack=touch pwned"},
               invalid_field="workspace")),
    Action(path="/terraform/workspace/select", writes=True, subtype="setup:terraform_ws",
           title="Switch workspace", params=SelectParams, service=select_workspace,
           lock_key=LOCK, description=select_workspace.__doc__ or "",
           example=Example(
               params={"workspace": "staging", "create": True}, tool="terraform",
               tool_output='\nCreated and switched to workspace "staging"!\n',
               argv=("workspace", "select", "-no-color", "-or-create=true", "--", "staging"),
               expect={"created": True}, invalid={"workspace": "-rf"},
               invalid_field="workspace")),
    Action(path="/terraform/fmt", writes=True, subtype="format:terraform", title="Format files",
           params=FmtParams, service=fmt, description=fmt.__doc__ or "",
           example=Example(
               params={"dir": "infra"}, tool="terraform", files=FILES, tool_output="main.tf\n",
               argv=("-chdir=infra", "fmt", "-no-color", "-list=true", "-recursive"),
               expect={"files": ["infra/main.tf"]}, invalid={"dir": "/"}, invalid_field="dir")),
)
