"""Locating the project: the nearest directory (upwards) holding ``profiles.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airflow_mbt.errors import MBTInputError

PROFILES_FILE = "profiles.yaml"
PIPELINES_DIR = "pipelines"
TARGET_DIR = "target"


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
        stems = {p.stem for p in self.pipelines_dir.glob("*.yaml")}
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
