"""Locating the project: the nearest directory (upwards) holding ``profiles.yaml``.

Pipeline names are checked before they become paths (``check_pipeline_name``): a name is a file
stem of at most ``MAX_NAME_LENGTH`` characters, without path separators, so a name can neither
escape ``pipelines/`` and ``target/`` nor make the OS refuse the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from airflow_mbt.errors import MBTInputError

PROFILES_FILE = "profiles.yaml"
PIPELINES_DIR = "pipelines"
TARGET_DIR = "target"
MAX_NAME_LENGTH = 128
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a pipeline name, or None."""
    if not isinstance(name, str) or not name:
        return "a pipeline name must be a non-empty text"
    if len(name) > MAX_NAME_LENGTH:
        return f"pipeline name of {len(name)} characters, over the limit of {MAX_NAME_LENGTH}"
    if not _NAME.match(name):
        return f"invalid pipeline name {name[:60]!r}"
    return None


NAME_HINT = (f"a pipeline name is the file stem of pipelines/<name>.yaml: letters, digits, '_', '-', '.', "
             f"at most {MAX_NAME_LENGTH} characters")


def check_pipeline_name(name: object, field: str | None = "NAME") -> str:
    problem = name_problem(name)
    if problem:
        raise MBTInputError(problem, field=field, hint=NAME_HINT)
    return str(name)


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def profiles_path(self) -> Path:
        return self.root / PROFILES_FILE

    @property
    def pipelines_dir(self) -> Path:
        return self.root / PIPELINES_DIR

    def pipeline_path(self, name: str) -> Path:
        return self.pipelines_dir / f"{name}.yaml"

    def pipeline_names(self, include_bases: bool = False) -> list[str]:
        """Pipeline names (file stems); names starting with ``_`` are base pipelines."""
        if not self.pipelines_dir.is_dir():
            return []
        stems = {p.stem for p in self.pipelines_dir.glob("*.yaml") if p.is_file() and name_problem(p.stem) is None}
        return sorted(s for s in stems if include_bases or not s.startswith("_"))

    def manifest_path(self, name: str) -> Path:
        return self.root / TARGET_DIR / name / "manifest.json"

    def relative(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def find_project(start: Path | str | None = None, project_dir: Path | str | None = None) -> Project:
    """The project at ``project_dir`` (must hold profiles.yaml), else the nearest one above ``start``."""
    if project_dir is not None:
        root = Path(project_dir).expanduser().resolve()
        if not (root / PROFILES_FILE).is_file():
            raise MBTInputError(f"no {PROFILES_FILE} in {root}", field="--project-dir",
                                hint="point --project-dir at the folder created by `mbt init`")
        return Project(root)
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROFILES_FILE).is_file():
            return Project(folder)
    raise MBTInputError(f"not inside an mbt project (no {PROFILES_FILE} in {here} or above)",
                        hint="cd into your project, pass --project-dir, or create one with `mbt init NAME`")
