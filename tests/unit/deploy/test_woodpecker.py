"""The Woodpecker CI pipeline `mbt init` scaffolds (.woodpecker.yml): it matches the official
pipeline schema, validates on every event and publishes (image build, digest, compile, deploy)
only from master/main, compiles with the digest the registry holds for the commit's image (a
pinned regctl resolves it into a workspace file), runs real `mbt` subcommands with real flags in
the base image, and takes every credential from Woodpecker secrets.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from functools import lru_cache

import pytest
import yaml

from deploy_common import (
    MBT,
    PROJECT_FILES,
    compose,
    is_credential_name,
    profile_prod_image,
    project_dockerfile,
    schema_errors,
    validator,
    walk,
    woodpecker,
)

CI_MBT_COMMANDS = {"validate", "compile", "deploy"}
PROD_BRANCHES = {"master", "main"}
DIGEST_STEP = "resolve-digest"
IMAGE_FILE = ".mbt-image"
IMAGE_NAME = "demo-project"  # what `mbt init` puts for __IMAGE_NAME__ in this test
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32


def test_woodpecker_pipeline_matches_the_official_schema():
    check = validator("woodpecker-pipeline.schema.json")
    doc = woodpecker()
    assert schema_errors(check, doc) == []
    broken = json.loads(json.dumps(doc))
    broken["steps"]["validate"]["comands"] = ["mbt validate"]
    assert schema_errors(check, broken), "the schema must reject an unknown step key"


def _when(step: dict) -> list[dict]:
    when = step.get("when", [{}])
    return when if isinstance(when, list) else [when]


def _as_set(value: object) -> set:
    return set(value) if isinstance(value, list) else {value}


def test_woodpecker_triggers_validate_everywhere_and_publishes_only_from_master_or_main():
    doc = woodpecker()
    steps = doc["steps"]
    assert list(steps) == ["validate", "build-image", DIGEST_STEP, "compile", "deploy"]
    workflow_events = set().union(*(_as_set(w["event"]) for w in doc["when"]))
    assert workflow_events == {"push", "pull_request"}
    assert "when" not in steps["validate"], "validate runs for every workflow event"
    for name in ("build-image", DIGEST_STEP, "compile", "deploy"):
        (cond,) = _when(steps[name])
        assert _as_set(cond["event"]) == {"push"}, name
        assert _as_set(cond["branch"]) == PROD_BRANCHES, name


def test_woodpecker_image_build_uses_buildx_with_credentials_from_secrets():
    build = woodpecker()["steps"]["build-image"]
    assert build["image"].startswith("woodpeckerci/plugin-docker-buildx:")
    settings = build["settings"]
    assert settings["registry"] == "zot-registry:5050"
    # one image per project, tagged by commit only (never latest); compile records its digest
    assert settings["repo"] == "zot-registry:5050/__IMAGE_NAME__"
    assert settings["tags"] == ["${CI_COMMIT_SHA}"]
    assert profile_prod_image().rsplit(":", 1)[0] == settings["repo"]
    assert (PROJECT_FILES / settings["dockerfile"]).is_file()
    for cred in ("username", "password"):
        assert set(settings[cred]) == {"from_secret"}, cred
    base = project_dockerfile().arg_defaults()["MBT_BASE_IMAGE"]
    assert f"MBT_BASE_IMAGE={base}" in settings["build_args"]
    privileged = compose()["services"]["woodpecker-server"]["environment"]["WOODPECKER_PLUGINS_PRIVILEGED"]
    assert build["image"] in privileged.split(","), "the Woodpecker server must allow the buildx plugin"


def test_woodpecker_mbt_steps_run_in_the_base_image_and_take_secrets_only_from_secrets():
    steps = woodpecker()["steps"]
    base = project_dockerfile().arg_defaults()["MBT_BASE_IMAGE"]
    for name in ("validate", "compile", "deploy"):
        assert steps[name]["image"] == base, name
    # only the deploy step holds the S3 key (the CI key that writes manifests/)
    assert [n for n, s in steps.items() if "AIRFLOW_CONN_MBT_S3" in (s.get("environment") or {})] == ["deploy"]
    env = steps["deploy"]["environment"]
    assert env["AIRFLOW_CONN_MBT_S3"] == {"from_secret": env["AIRFLOW_CONN_MBT_S3"]["from_secret"]}
    for path, key, value in walk(woodpecker()):
        if is_credential_name(key) or str(key).startswith("AIRFLOW_CONN_"):
            assert isinstance(value, dict) and set(value) == {"from_secret"}, f"{path}/{key} is inline"


@lru_cache
def cli_flags(command: str) -> frozenset[str]:
    """The flags ``mbt <command> --help`` lists."""
    out = subprocess.run([str(MBT), command, "--help"], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, f"mbt {command} --help failed: {out.stderr}"
    options = out.stdout.split("options:", 1)[1].split("\nexamples:", 1)[0]
    return frozenset(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", options))


def _mbt_words(line: str) -> list[str]:
    """The words of a command line without its leading ``VAR=value`` assignments."""
    words = shlex.split(line)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0], re.DOTALL):
        words.pop(0)
    return words


def test_woodpecker_commands_are_real_mbt_subcommands_with_real_flags():
    top = subprocess.run([str(MBT), "--help"], capture_output=True, text=True, timeout=120, check=False).stdout
    seen = set()
    for name, step in woodpecker()["steps"].items():
        if name == DIGEST_STEP:
            continue  # regctl, not mbt (test_woodpecker_compiles_with_the_digest_of_the_pushed_image)
        for line in step.get("commands", []):
            words = _mbt_words(line)
            assert words[0] == "mbt" and words[1] in CI_MBT_COMMANDS, f"{name}: {line!r}"
            assert re.search(rf"^\s+{words[1]}\s", top, re.MULTILINE), f"mbt has no {words[1]} command"
            flags = {w.split("=", 1)[0] for w in words[2:] if w.startswith("-")}
            unknown = flags - cli_flags(words[1])
            assert not unknown, f"{name}: {line!r} uses unknown flags {sorted(unknown)}"
            if "--target" in words:
                assert words[words.index("--target") + 1] == "prod", line
            seen.add(words[1])
    assert seen == CI_MBT_COMMANDS


def test_cli_flag_reader_sees_real_flags_only():
    assert {"--target", "--dry-run"} <= cli_flags("deploy")
    assert "--no-such-flag" not in cli_flags("deploy")


def _woodpecker_substitute(text: str, variables: dict[str, str]) -> str:
    """What Woodpecker does to a value before the step's shell sees it: ``$$`` is a literal
    ``$``, ``${NAME}`` / ``$NAME`` are its CI variables (unknown ones become empty)."""
    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return variables.get(m.group(1) or m.group(2), "")

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", one, text)


def _scaffolded_steps() -> dict:
    """The steps with __IMAGE_NAME__ replaced the way `mbt init` does."""
    from airflow_mbt.scaffold.project_init import IMAGE_PLACEHOLDER

    text = (PROJECT_FILES / ".woodpecker.yml").read_text(encoding="utf-8").replace(IMAGE_PLACEHOLDER, IMAGE_NAME)
    return yaml.safe_load(text)["steps"]


def _run_step_shell(step: dict, cwd, path: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The step's commands as its container runs them: one POSIX shell script with ``set -e``,
    after Woodpecker's substitution of its CI variables."""
    script = "set -e\n" + "\n".join(_woodpecker_substitute(c, {"CI_COMMIT_SHA": COMMIT})
                                     for c in step["commands"]) + "\n"
    return subprocess.run(["sh", "-c", script], cwd=cwd, env={"PATH": path, **env}, capture_output=True,
                          text=True, timeout=120, check=False)


def _fake_regctl(bin_dir, digest: str) -> None:
    """A ``regctl`` on PATH that records its arguments and answers ``image digest`` with ``digest``."""
    log = bin_dir / "regctl.log"
    tool = bin_dir / "regctl"
    tool.write_text("#!/bin/sh\n"
                    f'printf "%s\\n" "$*" >> "{log}"\n'
                    'if [ "$1" = registry ] && [ "$2" = login ]; then cat > /dev/null; fi\n'
                    f'if [ "$1" = image ] && [ "$2" = digest ]; then echo "{digest}"; fi\n')
    tool.chmod(0o755)


def test_woodpecker_compiles_with_the_digest_of_the_pushed_image(tmp_path):
    """build-image pushes REPO:<commit>; resolve-digest (a pinned regctl, registry credentials
    from the secrets) writes REPO:<commit>@sha256:<digest> of that very tag to a workspace file;
    compile takes MBT_RUNNER_IMAGE from it. Run for real with POSIX sh and a stand-in regctl."""
    steps = woodpecker()["steps"]
    build, resolve, compile_ = steps["build-image"], steps[DIGEST_STEP], steps["compile"]
    # a pinned, well-kept tool image with a shell
    image, _, tag = resolve["image"].rpartition(":")
    assert image == "ghcr.io/regclient/regctl" and re.fullmatch(r"v\d+\.\d+\.\d+-alpine", tag), resolve["image"]
    assert resolve["environment"] == {"ZOT_USERNAME": build["settings"]["username"],
                                      "ZOT_PASSWORD": build["settings"]["password"]}
    assert "environment" not in compile_, "compile reads the image from the workspace, not from a tag"
    assert any(IMAGE_FILE in c and "MBT_RUNNER_IMAGE=" in c for c in compile_["commands"])

    scaffolded = _scaffolded_steps()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_regctl(bin_dir, DIGEST)
    path = f"{bin_dir}:/usr/bin:/bin"
    secrets = {"ZOT_USERNAME": "ci-user", "ZOT_PASSWORD": "pa$$word with spaces"}
    proc = _run_step_shell(scaffolded[DIGEST_STEP], tmp_path, path, secrets)
    assert proc.returncode == 0, proc.stderr
    ref = f"zot-registry:5050/{IMAGE_NAME}:{COMMIT}@{DIGEST}"
    assert (tmp_path / IMAGE_FILE).read_text().strip() == ref
    calls = (tmp_path / "bin" / "regctl.log").read_text().splitlines()
    assert calls == ["registry set zot-registry:5050 --tls disabled",
                     "registry login zot-registry:5050 --user ci-user --pass-stdin",
                     f"image digest zot-registry:5050/{IMAGE_NAME}:{COMMIT}"], calls
    assert secrets["ZOT_PASSWORD"] not in proc.stdout + proc.stderr + "\n".join(calls)

    # compile: the manifest records exactly that reference (mbt accepts REF:tag@sha256:<64 hex>)
    from airflow_mbt.project.images import check_image, is_pinned

    assert check_image(ref) == ref and is_pinned(ref)
    stub = bin_dir / "mbt"
    stub.write_text(f'#!/bin/sh\nprintf "%s|%s\\n" "$MBT_RUNNER_IMAGE" "$*" > "{tmp_path}/mbt.call"\n')
    stub.chmod(0o755)
    proc = _run_step_shell(scaffolded["compile"], tmp_path, path, {})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mbt.call").read_text().strip() == f"{ref}|compile --target prod"


@pytest.mark.parametrize("answer", ["", "sha256:abc", "latest"])
def test_woodpecker_digest_step_fails_on_a_bad_answer(tmp_path, answer):
    """A registry answer that is not a sha256 digest stops the pipeline before compile."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_regctl(bin_dir, answer)
    proc = _run_step_shell(_scaffolded_steps()[DIGEST_STEP], tmp_path, f"{bin_dir}:/usr/bin:/bin",
                           {"ZOT_USERNAME": "u", "ZOT_PASSWORD": "p"})
    assert proc.returncode != 0


def test_woodpecker_compile_fails_without_the_digest_file(tmp_path):
    """No .mbt-image (resolve-digest did not run): MBT_RUNNER_IMAGE is empty, and `mbt compile`
    of the scaffolded prod target refuses an empty image instead of falling back to a tag."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBT_")}
    out = subprocess.run([str(MBT), "init", "demo", "--dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=300, env=env, check=False)
    assert out.returncode == 0, out.stderr
    project = tmp_path / "demo"
    (line,) = _scaffolded_steps()["compile"]["commands"]
    command = _woodpecker_substitute(line, {"CI_COMMIT_SHA": COMMIT}).replace(
        "mbt compile", f"{MBT} compile training_churn_model_v1", 1)
    proc = subprocess.run(["sh", "-c", command], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "executor.config.image" in proc.stderr
    assert not (project / "target" / "training_churn_model_v1" / "manifest.json").exists()
