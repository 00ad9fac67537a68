"""The compiled manifest: the one contract between authoring (``project/``, ``pipeline/``) and
execution (``runtime/``, ``steps/``, ``operators/``, ``dag_factory``).

A manifest is parsed ONCE from JSON into frozen dataclasses (``Manifest``, ``PipelineInfo``,
``TargetSpec``, ``ManifestStep``, ``Criterion``, ``SourcePosition``); execution reads typed
attributes, never ``.get()`` chains on the raw document. Defaults are applied at compile time
only. JSON layout (``schema_version`` 2)::

    {
      "schema_version": 2,
      "mbt_version": "0.1.0",
      "pipeline": {"name", "kind": "training"|"serving", "problem_type", "owner",
                   "experiment_name", "tags": [...], "framework",
                   "source_file": "pipelines/x.yaml", "source_yaml": "<raw text>"},
      "schedule": "@monthly" | "@daily" | "@hourly" | "@weekly" | "<cron>",
      "target": {"name": "prod", "profile": "demo-project",
                 "executor": {"type", "config"}, "storage": {"type", "config"},
                 "data_connector": {"type", "config"}, "mlflow": {...}, "h2o": {...},
                 "secrets": {"provider"}, "orchestrator": {...}, "manifests": {...}},
      "config": {<validated pipeline document, defaults filled, vars/env rendered>},
      "criteria": [{"metric": "roc_auc", "op": ">=", "threshold": 0.7}],
      "positions": {"training.split.test_size": ["pipelines/x.yaml", 12, 17], ...},
      "steps": [{"name", "inputs": [...], "outputs": [{"name","kind"}], "depends_on": [...],
                 "resources": {"cpu": "1", "memory": "2Gi"} | {}}],
      "code": {"hash": "sha256:<hex>", "files": {"lib/features.py": "<sha256 hex>"}},  (optional)
      "content_hash": "sha256:<hex>"
    }

``positions`` maps each compiled pipeline field (dotted path, ``a.b[2].c``) to where it was
written, so errors raised while a step runs point at the YAML without reading it.
Secrets never appear: ``{{ secret('X') }}`` renders to ``{"$secret": "X"}`` and is resolved at
run time. Serialization is canonical (sorted keys, fixed separators): the same inputs give a
byte-identical file, and ``content_hash`` covers everything except itself. ``release_hash``
(computed, never stored) is the identity of a release: it leaves out the YAML text and the
positions, so a comment-only change is the same release while a ``lib/`` change is a new one.
A runner meeting another ``schema_version`` stops with an input error naming both versions.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from airflow_mbt.constants import ArtifactKind, ExecutorType, PipelineKind
from airflow_mbt.errors import MBTInputError

SCHEMA_VERSION = 2
SUPPORTED_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})
MANIFEST_VERSION = SCHEMA_VERSION  # the former name of the field, kept for imports
SECRET_KEY = "$secret"
REQUIRED_KEYS = ("pipeline", "schedule", "target", "config", "steps", "content_hash")
_ARTIFACT_KINDS = frozenset(ArtifactKind.values())
_PIPELINE_KINDS = frozenset(PipelineKind.values())
_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, separators=(",", ": "),
                      allow_nan=False) + "\n"


def compute_hash(data: Mapping[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "content_hash"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


# what a release is NOT made of: the integrity hash, and where fields were written in the YAML
# (comments and whitespace move positions and change ``pipeline.source_yaml``, never what runs)
RELEASE_EXCLUDED_KEYS = ("content_hash", "positions")


def release_body(data: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a manifest document that decides what runs (see ``compute_release_hash``)."""
    body = {k: v for k, v in data.items() if k not in RELEASE_EXCLUDED_KEYS}
    if isinstance(body.get("pipeline"), Mapping):
        body["pipeline"] = {k: v for k, v in body["pipeline"].items() if k != "source_yaml"}
    return body


def compute_release_hash(data: Mapping[str, Any]) -> str:
    """Identity of a release: the normalised compiled pipeline (``config``, steps, schedule,
    criteria), the target (image included), ``mbt_version`` and the project code hash
    (``code.hash``) - not the YAML text, its comments or field positions."""
    return compute_hash(release_body(data))


def is_secret_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SECRET_KEY}


def plain(value: Any) -> Any:
    """A manifest value with its read-only mappings turned back into plain dicts and lists
    (for JSON, templated operator arguments, and code that mutates its copy)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def field_path(dotted: str) -> tuple[str | int, ...]:
    """``"a.b[2].c"`` -> ``("a", "b", 2, "c")``."""
    return tuple(int(idx) if idx else name for name, idx in _FIELD_PART.findall(dotted))


def dotted_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class ManifestFormatError(MBTInputError):
    """The manifest document is malformed: wrong types, missing keys, unknown version."""


def _mapping(value: Any, where: str, source: str) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise ManifestFormatError(f"must be an object, not {type(value).__name__}", file=source, field=where,
                                  hint="the manifest was edited by hand or by another tool; recompile it")
    return MappingProxyType(value)


def _str(value: Any, where: str, source: str, *, optional: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise ManifestFormatError(f"must be a string, not {type(value).__name__}", file=source, field=where,
                                  hint="recompile the manifest with `mbt compile`")
    return value


def _strs(value: Any, where: str, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestFormatError("must be a list of strings", file=source, field=where,
                                  hint="recompile the manifest with `mbt compile`")
    return tuple(value)


def _list(value: Any, where: str, source: str) -> list[Any]:
    if not isinstance(value, list):
        raise ManifestFormatError(f"must be a list, not {type(value).__name__}", file=source, field=where,
                                  hint="recompile the manifest with `mbt compile`")
    return value


@dataclass(frozen=True)
class SourcePosition:
    """Where a compiled field was written: ``file`` relative to the project, 1-based line/col."""

    file: str
    line: int
    col: int

    def to_json(self) -> list[Any]:
        return [self.file, self.line, self.col]


@dataclass(frozen=True)
class Criterion:
    """One compiled ``evaluation.validation_criteria`` item: ``metric op threshold``."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op, "threshold": self.threshold}

    def passes(self, actual: float | None) -> bool:
        import operator

        ops = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
        return actual is not None and bool(ops[self.op](actual, self.threshold))


@dataclass(frozen=True)
class StepOutput:
    name: str
    kind: ArtifactKind


@dataclass(frozen=True)
class ManifestStep:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[StepOutput, ...]
    depends_on: tuple[str, ...]
    resources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @property
    def output_kinds(self) -> dict[str, ArtifactKind]:
        return {o.name: o.kind for o in self.outputs}

    @classmethod
    def from_json(cls, data: Any, where: str, source: str) -> ManifestStep:
        doc = _mapping(data, where, source)
        missing = [k for k in ("name", "inputs", "outputs", "depends_on") if k not in doc]
        if missing:
            raise ManifestFormatError(f"step is missing {', '.join(missing)}", file=source, field=where,
                                      hint="the manifest was edited by hand; recompile it with `mbt compile`")
        outputs = []
        for i, out in enumerate(_list(doc.get("outputs", []), f"{where}.outputs", source)):
            o = _mapping(out, f"{where}.outputs[{i}]", source)
            kind = o.get("kind")
            if kind not in _ARTIFACT_KINDS:
                raise ManifestFormatError(f"unknown artifact kind {kind!r}", file=source,
                                          field=f"{where}.outputs[{i}].kind",
                                          hint=f"one of: {', '.join(ArtifactKind.values())}")
            outputs.append(StepOutput(_str(o.get("name"), f"{where}.outputs[{i}].name", source), ArtifactKind(kind)))
        resources = _mapping(doc.get("resources"), f"{where}.resources", source)
        return cls(name=_str(doc.get("name"), f"{where}.name", source),
                   inputs=_strs(doc.get("inputs"), f"{where}.inputs", source),
                   outputs=tuple(outputs),
                   depends_on=_strs(doc.get("depends_on"), f"{where}.depends_on", source),
                   resources=MappingProxyType({str(k): str(v) for k, v in resources.items()}))


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    kind: PipelineKind
    problem_type: str
    owner: str
    experiment_name: str
    tags: tuple[str, ...]
    framework: str
    source_file: str
    source_yaml: str

    @classmethod
    def from_json(cls, data: Any, source: str) -> PipelineInfo:
        doc = _mapping(data, "pipeline", source)
        kind = doc.get("kind")
        if kind not in _PIPELINE_KINDS:
            raise ManifestFormatError(f"unknown pipeline kind {kind!r}", file=source, field="pipeline.kind",
                                      hint=f"one of: {', '.join(PipelineKind.values())}")
        return cls(name=_str(doc.get("name"), "pipeline.name", source), kind=PipelineKind(kind),
                   problem_type=_str(doc.get("problem_type"), "pipeline.problem_type", source, optional=True),
                   owner=_str(doc.get("owner"), "pipeline.owner", source, optional=True),
                   experiment_name=_str(doc.get("experiment_name"), "pipeline.experiment_name", source, optional=True),
                   tags=_strs(doc.get("tags"), "pipeline.tags", source),
                   framework=_str(doc.get("framework"), "pipeline.framework", source, optional=True),
                   source_file=_str(doc.get("source_file"), "pipeline.source_file", source, optional=True),
                   source_yaml=_str(doc.get("source_yaml"), "pipeline.source_yaml", source, optional=True))


@dataclass(frozen=True)
class PluginSpec:
    """A target section naming a plugin: ``{"type": ..., "config": {...}}`` (secrets unresolved)."""

    type: str
    config: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Any, where: str, source: str) -> PluginSpec:
        doc = _mapping(data, where, source)
        kind = doc.get("type")
        return cls(type=kind if isinstance(kind, str) else "",
                   config=_mapping(doc.get("config"), f"{where}.config", source))


@dataclass(frozen=True)
class TargetSpec:
    """The compiled target: plugin sections, services, orchestrator settings. Secret values are
    ``{"$secret": NAME}`` references; ``runtime.context.TargetRuntime`` resolves them."""

    name: str
    profile: str
    executor: PluginSpec
    storage: PluginSpec
    data_connector: PluginSpec
    mlflow: Mapping[str, Any]
    h2o: Mapping[str, Any]
    secrets_provider: str
    orchestrator: Mapping[str, Any]
    manifests: Mapping[str, Any]
    raw: Mapping[str, Any]  # the whole section as compiled (what ``TargetRuntime.section`` resolves)

    @property
    def executor_type(self) -> ExecutorType | None:
        return ExecutorType(self.executor.type) if self.executor.type in ExecutorType.values() else None

    @property
    def default_args(self) -> Mapping[str, Any]:
        config = self.orchestrator.get("config") or {}
        return MappingProxyType(dict(config.get("default_args") or {}))

    @classmethod
    def from_json(cls, data: Any, source: str = "<manifest>") -> TargetSpec:
        doc = _mapping(data, "target", source)
        secrets = _mapping(doc.get("secrets"), "target.secrets", source)
        return cls(name=_str(doc.get("name"), "target.name", source),
                   profile=_str(doc.get("profile"), "target.profile", source, optional=True),
                   executor=PluginSpec.from_json(doc.get("executor"), "target.executor", source),
                   storage=PluginSpec.from_json(doc.get("storage"), "target.storage", source),
                   data_connector=PluginSpec.from_json(doc.get("data_connector"), "target.data_connector", source),
                   mlflow=_mapping(doc.get("mlflow"), "target.mlflow", source),
                   h2o=_mapping(doc.get("h2o"), "target.h2o", source),
                   secrets_provider=str(secrets.get("provider") or "env"),
                   orchestrator=_mapping(doc.get("orchestrator"), "target.orchestrator", source),
                   manifests=_mapping(doc.get("manifests"), "target.manifests", source),
                   raw=doc)


@dataclass(frozen=True)
class Manifest:
    """A parsed, verified manifest. ``data`` is the JSON document it was parsed from (read only:
    ``to_json`` serialises it); every other attribute is a typed view of it."""

    data: Mapping[str, Any]
    schema_version: int
    mbt_version: str
    pipeline: PipelineInfo
    schedule: str
    target: TargetSpec
    config: Mapping[str, Any]
    criteria: tuple[Criterion, ...]
    steps: tuple[ManifestStep, ...]
    content_hash: str

    # ---- typed accessors ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def kind(self) -> PipelineKind:
        return self.pipeline.kind

    @property
    def target_name(self) -> str:
        return self.target.name

    def step(self, name: str) -> ManifestStep:
        for s in self.steps:
            if s.name == name:
                return s
        raise MBTInputError(f"pipeline {self.name!r} has no step {name!r}",
                            field="--step", hint=f"steps: {', '.join(s.name for s in self.steps)}")

    def producers(self) -> dict[str, str]:
        """artifact name -> the step that outputs it."""
        return {out: s.name for s in self.steps for out in s.output_names}

    @cached_property
    def release_hash(self) -> str:
        """``compute_release_hash`` of this manifest: equal for a comment-only change."""
        return compute_release_hash(self.data)

    @property
    def code_hash(self) -> str | None:
        """Hash of the project code compiled into this manifest (``code.hash``), if any."""
        code = self.data.get("code")
        value = code.get("hash") if isinstance(code, Mapping) else None
        return value if isinstance(value, str) else None

    @cached_property
    def positions(self) -> Mapping[str, SourcePosition]:
        """Field -> source position; parsed on first use (DAG parsing never needs them). A
        malformed entry is skipped: a position only decorates an error message."""
        out: dict[str, SourcePosition] = {}
        for key, pos in (self.data.get("positions") or {}).items():
            if (isinstance(pos, list) and len(pos) == 3 and isinstance(pos[0], str)
                    and all(isinstance(n, int) and not isinstance(n, bool) for n in pos[1:])):
                out[key] = SourcePosition(pos[0], pos[1], pos[2])
        return MappingProxyType(out)

    def position(self, dotted: str) -> SourcePosition | None:
        """Where field ``dotted`` (or its nearest written ancestor) is in the pipeline YAML."""
        path = field_path(dotted)
        while path:
            pos = self.positions.get(dotted_path(path))
            if pos is not None:
                return pos
            path = path[:-1]
        return None

    # ---- (de)serialization -------------------------------------------------------------------
    @classmethod
    def build(cls, body: Mapping[str, Any]) -> Manifest:
        """A new manifest from a compiled body (``content_hash`` is computed here)."""
        data = dict(body)
        data.setdefault("schema_version", SCHEMA_VERSION)
        data.setdefault("criteria", [])
        data.setdefault("positions", {})
        data.pop("content_hash", None)
        data["content_hash"] = compute_hash(data)
        return cls.parse(data)

    @classmethod
    def parse(cls, data: Any, source: str = "<manifest>") -> Manifest:
        """Typed view of a JSON document (verified: keys, types, version, content hash)."""
        if not isinstance(data, dict):
            raise ManifestFormatError("manifest must be a JSON object", file=source,
                                      hint="recompile it with `mbt compile`")
        version = data.get("schema_version", data.get("manifest_version"))
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            raise ManifestFormatError(
                f"manifest schema_version {version!r} is not supported: this mbt reads schema_version "
                f"{', '.join(map(str, sorted(SUPPORTED_SCHEMA_VERSIONS)))}", file=source, field="schema_version",
                hint="recompile the pipeline with this mbt version (`mbt compile NAME --target T`), "
                     "or run it with the mbt version that compiled it")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ManifestFormatError(f"manifest is missing {', '.join(missing)}", file=source,
                                      hint="recompile with `mbt compile`")
        try:
            expected = compute_hash(data)
        except (TypeError, ValueError) as exc:
            raise ManifestFormatError(f"manifest holds a value JSON cannot encode ({exc})", file=source,
                                      hint="recompile with `mbt compile`") from None
        if expected != data["content_hash"]:
            raise ManifestFormatError("content_hash does not match the manifest content", file=source,
                                      field="content_hash", hint="the file was edited or truncated; recompile it")
        _mapping(data.get("positions"), "positions", source)  # its entries are read on first use
        criteria = []
        for i, item in enumerate(_list(data.get("criteria", []), "criteria", source)):
            c = _mapping(item, f"criteria[{i}]", source)
            threshold = c.get("threshold")
            if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
                raise ManifestFormatError("threshold must be a number", file=source, field=f"criteria[{i}].threshold")
            criteria.append(Criterion(_str(c.get("metric"), f"criteria[{i}].metric", source),
                                      _str(c.get("op"), f"criteria[{i}].op", source), float(threshold)))
        steps = tuple(ManifestStep.from_json(s, f"steps[{i}]", source)
                      for i, s in enumerate(_list(data["steps"], "steps", source)))
        return cls(data=MappingProxyType(data), schema_version=int(version),
                   mbt_version=_str(data.get("mbt_version"), "mbt_version", source, optional=True),
                   pipeline=PipelineInfo.from_json(data["pipeline"], source),
                   schedule=_str(data["schedule"], "schedule", source),
                   target=TargetSpec.from_json(data["target"], source),
                   config=_mapping(data["config"], "config", source),
                   criteria=tuple(criteria), steps=steps,
                   content_hash=_str(data["content_hash"], "content_hash", source))

    def to_json(self) -> str:
        return canonical_json(dict(self.data))

    def write(self, path: Path) -> Path:
        from airflow_mbt._fs import atomic_write_text

        return atomic_write_text(path, self.to_json())

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "<manifest>") -> Manifest:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ManifestFormatError(f"not valid JSON ({str(exc)[:200]})", file=source,
                                      hint="recompile with `mbt compile`") from None
        return cls.parse(data, source)

    @classmethod
    def read(cls, path: Path | str) -> Manifest:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MBTInputError("manifest not found", file=str(path),
                                hint="run `mbt compile NAME --target T` first") from None
        except IsADirectoryError:
            raise MBTInputError("is a directory, not a manifest file", file=str(path),
                                hint="pass the path of a manifest.json") from None
        except UnicodeDecodeError:
            raise ManifestFormatError("is not UTF-8 text", file=str(path),
                                      hint="recompile with `mbt compile`") from None
        return cls.from_json(text, source=str(path))
