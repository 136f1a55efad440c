"""The site's configuration (``.controlplane/pages.yaml`` and its segments), the actions'
parameter models, and the prechecks that refuse a missing config or an unknown segment
before any run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from controlplane.core.actions import ProjectPath, validate_model
from controlplane.core.errors import Conflict, InvalidInput
from controlplane.core.integrations._cli_tools import Name, RefName

CONFIG = ".controlplane/pages.yaml"
WORK = ".controlplane/pages"
BUILD, SITE = f"{WORK}/build", f"{WORK}/site"
Builder = Literal["static", "mkdocs"]


class Segment(BaseModel):
    name: Name = Field(description="the segment's name (its URL folder in the merged site)")
    source: ProjectPath = Field(min_length=1, max_length=300,
                                description="directory with the segment's sources")
    builder: Builder = Field("static", description="static (built in) or mkdocs")


class PagesConfig(BaseModel):
    segments: list[Segment] = Field(min_length=1, max_length=100)

    @field_validator("segments")
    @classmethod
    def _unique(cls, segments: list[Segment]) -> list[Segment]:
        names = [s.name for s in segments]
        if len(set(names)) != len(names):
            raise ValueError("segment names must be unique")
        return segments


def load_config(root: Path) -> PagesConfig:
    """The segments of ``.controlplane/pages.yaml``; InvalidInput if it is missing or wrong."""
    path = root / CONFIG
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InvalidInput({"config": f"{CONFIG} is missing: run /pages/init first"}) from None
    except yaml.YAMLError as exc:
        raise InvalidInput({"config": f"{CONFIG} is not YAML: {exc}"}) from None
    if not isinstance(data, dict):
        raise InvalidInput({"config": f"{CONFIG} must be a mapping with 'segments'"})
    return validate_model(PagesConfig, data, {"project_root": root})


def segment(root: Path, name: str) -> Segment:
    found = next((s for s in load_config(root).segments if s.name == name), None)
    if found is None:
        raise InvalidInput({"name": f"no segment {name!r} in {CONFIG}"})
    return found


def check_segment(root: Path, params: BaseModel) -> None:
    """A precheck: 422 before any run for a missing config or an unknown segment."""
    segment(root, getattr(params, "name", ""))


def check_config(root: Path, params: BaseModel) -> None:
    load_config(root)


def check_init(root: Path, params: BaseModel) -> None:
    if (root / CONFIG).exists() and not getattr(params, "overwrite", False):
        raise Conflict(f"{CONFIG} exists: send \"overwrite\": true to replace it", path=CONFIG)




def _segment_from_text(value: Any) -> Any:
    """``"name:source[:builder]"`` (one line of the dashboard's form) as a segment."""
    if isinstance(value, str):
        name, _, rest = value.partition(":")
        source, _, builder = rest.partition(":")
        return {"name": name.strip(), "source": source.strip() or name.strip(),
                **({"builder": builder.strip()} if builder.strip() else {})}
    return value


class InitParams(BaseModel):
    segments: list[Annotated[Segment, BeforeValidator(_segment_from_text)]] | None = Field(
        None, max_length=100, description="the segments, one per line as name:source[:builder] "
                                          "(default: mkdocs.yml, else docs/)")
    overwrite: bool = Field(False, description=f"replace an existing {CONFIG}")


class BuilderParams(BaseModel):
    name: Builder = Field(description="the builder whose dependencies to install")


class SegmentParams(BaseModel):
    name: Name = Field(description="a segment of .controlplane/pages.yaml")


class BuildAllParams(BaseModel):
    fail_fast: bool = Field(False, description="stop at the first segment that fails")


class MergeParams(BaseModel):
    title: str = Field("Project site", min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$",
                       description="title of the merged site's index page")


class DeployParams(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")  # RefName uses look-arounds

    branch: RefName = Field("gh-pages", description="branch that receives the site")
    remote: Name | None = Field(None, description="push the branch to this remote afterwards")
    message: str = Field("Deploy site", min_length=1, max_length=500,
                         pattern=r"^[^\x00]+$", description="the commit message")
