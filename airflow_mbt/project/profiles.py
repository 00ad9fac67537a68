"""profiles.yaml: loading, profile and target selection, rendering, and the manifest ``target``.

Only the selected target is rendered (other targets may use env vars that are not set here).
Secrets stay references (``{"$secret": NAME}``); a literal credential (see ``credentials.py``:
keys like ``*password*``, ``*token*``, credentials in URLs) in the selected target is an input
error, because it would be written into the manifest. Local paths must stay inside the project
(``paths.py``); numbers must be finite and of bounded size (``project/limits.py``).
``require_secrets`` reports a ``secret()`` that a local-executor target needs and the
environment lacks, at its profiles.yaml line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from airflow_mbt.constants import ExecutorType
from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import SECRET_KEY
from airflow_mbt.project.limits import check_numbers
from airflow_mbt.project.schema_check import suggest, validate
from airflow_mbt.project.yaml_loader import Located, load_yaml
from airflow_mbt.project.credentials import check_credentials, check_rendered_urls
from airflow_mbt.project.paths import check_target_paths
from airflow_mbt.project.render import Renderer
from airflow_mbt.project.root import Project

SCHEMA_PATH = Path(__file__).with_name("profiles.schema.json")
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
        raise doc.error((), "profiles.yaml must map profile names to profiles",
                        hint="e.g. `my-project:` with `target: dev` and `outputs:` under it (see `mbt init`)")
    for name, profile in doc.value.items():
        if not isinstance(profile, dict):
            raise doc.error((name,), f"profile {str(name)[:60]!r} must be a mapping (target:, outputs:, ...)",
                            hint="indent `target:` and `outputs:` under the profile name")
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
        raise doc.error((profile, "outputs"), "outputs must map target names to targets",
                        hint="e.g. `outputs:` with `dev: {storage: ..., data_connector: ..., mlflow: ...}` under it")
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


def resolve_target(project: Project, target: str | None = None, profile: str | None = None,
                   vars: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> ResolvedTarget:
    """Select, render and validate one target; build the manifest ``target`` section."""
    from airflow_mbt.plugins import registry

    doc = load_profiles(project)
    profile = select_profile(doc, project, profile)
    target = select_target(doc, profile, target)
    raw = dict(doc.value[profile])
    raw["outputs"] = {target: raw["outputs"][target]}
    check_credentials({profile: raw}, doc.error)
    rendered = Renderer(vars, env, allow_secrets=True).render({profile: raw}, doc.error)
    checked = Located(rendered, doc.locs, doc.file, doc.text)
    check_numbers(rendered, checked.error)
    check_rendered_urls(rendered, checked.error)
    validate(checked, SCHEMA_PATH, "profiles file")
    check_target_paths({profile: raw}, rendered, [(profile, "outputs", target), (profile,)], project.root,
                       checked.error)
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
    return ResolvedTarget(profile=profile, name=target, section=section, doc=checked, warnings=[])


def _secret_refs(value: Any, path: tuple):
    if isinstance(value, dict):
        if set(value) == {SECRET_KEY}:
            yield path, value[SECRET_KEY]
            return
        for key, item in value.items():
            yield from _secret_refs(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _secret_refs(item, path + (i,))


def require_secrets(target: ResolvedTarget, env: Mapping[str, str] | None = None,
                    skip: tuple[str, ...] = ("manifests",)) -> None:
    """A ``secret()`` of the target that is unset here, reported at its profiles.yaml line.

    Only for ``executor: local`` (the steps run where ``mbt`` runs, or on a worker with the same
    environment); a kubernetes target's pods get their secrets from Kubernetes Secrets.
    ``skip``: sections the pipeline does not use (``manifests``; ``h2o`` for sklearn).
    """
    import os

    if (target.section.get("executor") or {}).get("type", ExecutorType.LOCAL) != ExecutorType.LOCAL:
        return
    env = os.environ if env is None else env
    body = target.doc.value[target.profile]
    sections = [((target.profile,), {"mlflow": body.get("mlflow")}),
                (target.loc_path(), body["outputs"][target.name])]
    for prefix, section in sections:
        for key, value in section.items():
            if key in skip:
                continue
            for path, name in _secret_refs(value, prefix + (key,)):
                if name not in env:
                    raise target.doc.error(path, f"secret {name!r} is not set in the environment",
                                           hint=f"export {name}=... before mbt compile/run (steps of this "
                                                f"local-executor target read it at run time)")
