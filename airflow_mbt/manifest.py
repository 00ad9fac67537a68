"""The compiled manifest: the single contract between authoring (pipeline/, project/) and
execution (runtime/, operators/, dag_factory).

JSON layout (``manifest_version`` 1)::

    {
      "manifest_version": 1,
      "mbt_version": "0.1.0",
      "pipeline": {"name", "kind": "training"|"serving", "problem_type", "owner",
                   "experiment_name", "tags": [...], "framework",
                   "source_file": "pipelines/x.yaml", "source_yaml": "<raw text>"},
      "schedule": "@monthly" | "@daily" | "@hourly" | "@weekly" | "<cron>",
      "target": {"name": "prod", "profile": "demo-project",
                 "executor": {...}, "storage": {...}, "data_connector": {...},
                 "mlflow": {...}, "h2o": {...}, "secrets": {...},
                 "orchestrator": {...}, "manifests": {...}},
      "config": {<validated pipeline document, defaults filled, vars/env rendered>},
      "steps": [{"name", "inputs": [...], "outputs": [{"name","kind"}], "depends_on": [...],
                 "resources": {"cpu": "1", "memory": "2Gi"} | {}}],
      "content_hash": "sha256:<hex>"
    }

Secrets never appear: a ``{{ secret('X') }}`` renders to ``{"$secret": "X"}`` and is resolved at
run time. Serialization is canonical (sorted keys, fixed separators) so the same inputs give a
byte-identical file, and ``content_hash`` covers everything except itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1
SECRET_KEY = "$secret"


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, separators=(",", ": ")) + "\n"


def compute_hash(data: dict) -> str:
    body = {k: v for k, v in data.items() if k != "content_hash"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class ManifestStep:
    name: str
    inputs: list[str]
    outputs: list[dict]  # {"name": ..., "kind": ...}
    depends_on: list[str]
    resources: dict = field(default_factory=dict)

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs]

    @property
    def output_kinds(self) -> dict[str, str]:
        return {o["name"]: o["kind"] for o in self.outputs}


@dataclass
class Manifest:
    data: dict

    # ---- accessors -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.data["pipeline"]["name"]

    @property
    def kind(self) -> str:
        return self.data["pipeline"]["kind"]

    @property
    def pipeline(self) -> dict:
        return self.data["pipeline"]

    @property
    def schedule(self) -> str:
        return self.data["schedule"]

    @property
    def target(self) -> dict:
        return self.data["target"]

    @property
    def target_name(self) -> str:
        return self.data["target"]["name"]

    @property
    def config(self) -> dict:
        return self.data["config"]

    @property
    def content_hash(self) -> str:
        return self.data["content_hash"]

    @property
    def steps(self) -> list[ManifestStep]:
        return [ManifestStep(name=s["name"], inputs=list(s["inputs"]), outputs=list(s["outputs"]),
                             depends_on=list(s["depends_on"]), resources=dict(s.get("resources") or {}))
                for s in self.data["steps"]]

    def step(self, name: str) -> ManifestStep:
        for s in self.steps:
            if s.name == name:
                return s
        from airflow_mbt.errors import MBTInputError

        raise MBTInputError(f"pipeline {self.name!r} has no step {name!r}",
                            field="--step", hint=f"steps: {', '.join(s.name for s in self.steps)}")

    # ---- (de)serialization -----------------------------------------------------------------
    @classmethod
    def build(cls, body: dict) -> "Manifest":
        data = dict(body)
        data.setdefault("manifest_version", MANIFEST_VERSION)
        data["content_hash"] = compute_hash(data)
        return cls(data)

    def to_json(self) -> str:
        return canonical_json(self.data)

    def write(self, path: Path) -> Path:
        from airflow_mbt._fs import atomic_write_text

        return atomic_write_text(path, self.to_json())

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "<manifest>") -> "Manifest":
        from airflow_mbt.errors import MBTInputError

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise MBTInputError(f"not valid JSON ({exc})", file=source) from None
        if not isinstance(data, dict):
            raise MBTInputError("manifest must be a JSON object", file=source)
        missing = [k for k in ("manifest_version", "pipeline", "schedule", "target", "config", "steps",
                               "content_hash") if k not in data]
        if missing:
            raise MBTInputError(f"manifest is missing {', '.join(missing)}", file=source,
                                hint="recompile with `mbt compile`")
        if data["manifest_version"] != MANIFEST_VERSION:
            raise MBTInputError(f"unsupported manifest_version {data['manifest_version']!r}",
                                file=source, hint=f"this mbt reads version {MANIFEST_VERSION}")
        if compute_hash(data) != data["content_hash"]:
            raise MBTInputError("content_hash does not match the manifest content", file=source,
                                hint="the file was edited or truncated; recompile it")
        return cls(data)

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        from airflow_mbt.errors import MBTInputError

        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MBTInputError("manifest not found", file=str(path),
                                hint="run `mbt compile NAME --target T` first") from None
        return cls.from_json(text, source=str(path))


def is_secret_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SECRET_KEY}
