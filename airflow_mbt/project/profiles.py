"""profiles.yaml: loading, profile and target selection, rendering, and the manifest ``target``.

Only the selected target is rendered (other targets may use env vars that are not set here).
Secrets stay references (``{"$secret": NAME}``); a literal credential (password, secret_key,
access_key, token) in any target is an input error, because it would be written into the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from airflow_mbt.errors import MBTInputError
from airflow_mbt.pipeline.schema_check import suggest, validate
from airflow_mbt.pipeline.yaml_loader import Located, dotted, load_yaml
from airflow_mbt.project.render import Renderer
from airflow_mbt.project.root import Project

SCHEMA_PATH = Path(__file__).with_name("profiles.schema.json")
SECRET_FIELDS = ("password", "secret_key", "access_key", "token")
PLUGIN_SECTIONS = {"storage": "storage", "data_connector": "data_connectors"}


@dataclass
class ResolvedTarget:
    """The selected target of the selected profile, rendered and checked."""

    profile: str
    name: str
    section: dict                      # the manifest ``target`` (CONTRACTS §2)
    doc: Located                       # profiles.yaml with source positions
    warnings: list[str] = field(default_factory=list)

    def loc_path(self, *keys) -> tuple:
        return (self.profile, "outputs", self.name) + keys


def load_profiles(project: Project) -> Located:
    doc = load_yaml(project.profiles_path, project.root)
    if doc.value is None:
        raise doc.error((), "profiles.yaml is empty", hint="see `mbt init` for an example with dev and prod targets")
    if not isinstance(doc.value, dict):
        raise doc.error((), "profiles.yaml must map profile names to profiles")
    for name, profile in doc.value.items():
        if not isinstance(profile, dict):
            raise doc.error((name,), f"profile {name!r} must be a mapping (target:, outputs:, ...)")
    return doc


def select_profile(doc: Located, project: Project, profile: str | None = None) -> str:
    names = [str(n) for n in doc.value]
    if profile is not None:
        if profile not in doc.value:
            raise MBTInputError(f"profile {profile!r} is not in profiles.yaml", field="--profile",
                                hint=suggest(profile, names) or f"profiles: {', '.join(names)}")
        return profile
    if len(names) == 1:
        return names[0]
    if project.name in doc.value:
        return project.name
    raise doc.error((), f"profiles.yaml has several profiles ({', '.join(names)}) and none is named "
                        f"like the project folder {project.name!r}", hint="pass --profile NAME")


def select_target(doc: Located, profile: str, target: str | None = None) -> str:
    body = doc.value[profile]
    outputs = body.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        # the schema explains best (missing `outputs`, a misspelt key, a wrong type)
        validate(Located({profile: body}, doc.locs, doc.file), SCHEMA_PATH, "profiles file")
        raise doc.error((profile, "outputs"), "outputs must map target names to targets")
    names = [str(n) for n in outputs]
    if target is None:
        target = body.get("target")
        if target is None:
            raise doc.error((profile,), f"profile {profile!r} has no default `target:`",
                            hint=f"pass --target ({', '.join(names)}) or add `target: {names[0]}`")
        if target not in outputs:
            raise doc.error((profile, "target"), f"default target {target!r} is not in outputs",
                            hint=suggest(target, names) or f"targets: {', '.join(names)}")
        return target
    if target not in outputs:
        raise doc.error((profile, "outputs"), f"unknown target {target!r} (from --target)",
                        hint=suggest(target, names) or f"targets of profile {profile!r}: {', '.join(names)}")
    return target


def _reject_literal_secrets(doc: Located, value: Any, path: tuple) -> None:
    """Raise at the first literal credential: manifests must never hold a secret value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in SECRET_FIELDS and isinstance(item, str) and item:
                raise doc.error(path + (key,), "literal credential: it would be written into the manifest",
                                hint=f"use \"{{{{ secret('{key.upper()}') }}}}\" (resolved from the environment "
                                     "at run time) or a conn_id naming an Airflow connection")
            _reject_literal_secrets(doc, item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _reject_literal_secrets(doc, item, path + (i,))


def resolve_target(project: Project, target: str | None = None, profile: str | None = None,
                   vars: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> ResolvedTarget:
    """Select, render and validate one target; build the manifest ``target`` section."""
    from airflow_mbt.plugins import registry

    doc = load_profiles(project)
    profile = select_profile(doc, project, profile)
    target = select_target(doc, profile, target)
    raw = dict(doc.value[profile])
    raw["outputs"] = {target: raw["outputs"][target]}
    rendered = Renderer(vars, env, allow_secrets=True).render({profile: raw}, doc.error)
    checked = Located(rendered, doc.locs, doc.file, doc.text)
    validate(checked, SCHEMA_PATH, "profiles file")
    body = rendered[profile]
    out = body["outputs"][target]
    for key, kind in PLUGIN_SECTIONS.items():
        known = registry.names(kind)
        if out[key]["type"] not in known:
            raise checked.error((profile, "outputs", target, key, "type"), f"unknown {key} type {out[key]['type']!r}",
                                hint=suggest(out[key]["type"], known) or f"installed: {', '.join(known)}")
    mlflow = {**(body.get("mlflow") or {}), **out["mlflow"]}
    section = {
        "name": target,
        "profile": profile,
        "executor": out.get("executor") or {"type": "local"},
        "storage": out["storage"],
        "data_connector": out["data_connector"],
        "mlflow": mlflow,
        "h2o": out.get("h2o") or {},
        "secrets": out.get("secrets") or {"provider": "env"},
        "orchestrator": body.get("orchestrator") or {},
        "manifests": out.get("manifests") or {},
    }
    _reject_literal_secrets(checked, out, (profile, "outputs", target))
    return ResolvedTarget(profile=profile, name=target, section=section, doc=checked, warnings=[])
