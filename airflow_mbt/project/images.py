"""Runner image references of kubernetes targets: pinned by digest or a unique tag.

``check_image(ref, field)`` accepts ``[registry[:port]/]name[:tag][@sha256:<64 hex>]`` and
returns it; a malformed reference, or ``:latest`` / no tag without a digest, is an input error
(``--image`` must name one build). ``is_pinned(ref)``: it has a digest, or a tag other than
``latest``. ``with_image(section, ref)``: the compiled target section with
``executor.config.image`` set (kubernetes targets only). Pure stdlib.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from airflow_mbt.errors import MBTInputError

_REF = re.compile(r"(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
                  r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?")
HINT = ("pass the image CI built, by digest (REGISTRY/NAME@sha256:<64 hex>) or by a unique tag "
        "(REGISTRY/NAME:<commit sha>), never :latest")


def _parts(ref: str) -> re.Match[str] | None:
    return _REF.fullmatch(ref) if isinstance(ref, str) else None


def is_pinned(ref: str) -> bool:
    m = _parts(ref)
    return bool(m and (m["digest"] or (m["tag"] and m["tag"] != "latest")))


def check_image(ref: str, field: str = "--image") -> str:
    m = _parts(ref)
    if m is None:
        raise MBTInputError(f"{ref!r} is not an image reference", field=field, hint=HINT)
    if not is_pinned(ref):
        raise MBTInputError(f"image {ref!r} is not pinned: nodes keep stale copies of a moving tag",
                            field=field, hint=HINT)
    return ref


def with_image(section: dict[str, Any], ref: str, field: str = "--image") -> dict[str, Any]:
    executor = section.get("executor") or {}
    if executor.get("type") != "kubernetes":
        raise MBTInputError(f"--image is for kubernetes targets; target {section.get('name')!r} runs on "
                            f"{executor.get('type') or 'local'}", field=field,
                            hint="compile for the kubernetes target (e.g. --target prod) or drop --image")
    out = copy.deepcopy(section)
    out["executor"].setdefault("config", {})["image"] = check_image(ref, field)
    return out
