"""``mbt init NAME``: create a project that runs as is (profiles, example pipelines, sample data).

Everything under ``scaffold/files/`` is copied (``gitignore.txt`` becomes ``.gitignore``;
``__PROJECT_NAME__`` in text files becomes the project name), so the Dockerfile and CI files
that the deployment side adds there are included automatically.

``framework="sklearn"`` (``mbt init NAME --framework sklearn``) then overlays ``scaffold/sklearn/``:
the same churn pair trained with scikit-learn (with row filters and a small grid search) and a
minimal serving pipeline that takes its schema from the model.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from airflow_mbt.errors import MBTInputError

FILES_DIR = Path(__file__).with_name("files")
OVERLAYS = {"h2o": None, "sklearn": Path(__file__).with_name("sklearn")}
PLACEHOLDER = "__PROJECT_NAME__"
IMAGE_PLACEHOLDER = "__IMAGE_NAME__"  # the project's runner image name: the name in lower case
RENAMES = {"gitignore.txt": ".gitignore"}
SKIP = {"__pycache__", ".DS_Store"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def image_name(project: str) -> str:
    """The project's image repository name (``zot-registry:5050/<this>``): lower case, dots and
    runs of separators folded, so every project pushes its own image."""
    return re.sub(r"[._-]{2,}", "-", project.lower()).strip("._-") or "mbt-project"


def _copy_tree(src: Path, dest: Path, name: str) -> list[Path]:
    written = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP or part.endswith(".pyc") for part in rel.parts):
            continue
        out = dest / rel.parent / RENAMES.get(rel.name, rel.name)
        if path.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            shutil.copyfile(path, out)
        else:
            text = text.replace(IMAGE_PLACEHOLDER, image_name(name))
            out.write_text(text.replace(PLACEHOLDER, name), encoding="utf-8")
        shutil.copymode(path, out)
        written.append(out)
    return written


def init_project(name: str, parent: Path | str = ".", framework: str = "h2o") -> Path:
    """Create ``parent/name``; refuses an existing path. Returns the project directory."""
    if framework not in OVERLAYS:
        raise MBTInputError(f"unknown framework {framework!r}", field="--framework",
                            hint=f"one of: {', '.join(OVERLAYS)}")
    if not _NAME.match(name or ""):
        raise MBTInputError(f"invalid project name {name!r}", field="NAME",
                            hint="use letters, digits, '-', '_' or '.', e.g. demo-project")
    dest = Path(parent) / name
    if dest.exists():
        raise MBTInputError(f"{dest} already exists", field="NAME",
                            hint="choose another name or remove the folder")
    from airflow_mbt.scaffold.sample_data import write_csvs

    dest.mkdir(parents=True)
    _copy_tree(FILES_DIR, dest, name)
    overlay = OVERLAYS[framework]
    if overlay is not None:
        _copy_tree(overlay, dest, name)
    write_csvs(dest / "sample_data")
    return dest
