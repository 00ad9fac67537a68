"""The Woodpecker CI pipeline `mbt init` scaffolds (.woodpecker.yml): it matches the official
pipeline schema, validates on every event and publishes (image build, compile, deploy) only from
master/main, runs real `mbt` subcommands with real flags in the base image, and takes every
credential from Woodpecker secrets.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from functools import lru_cache

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
    assert list(steps) == ["validate", "build-image", "compile", "deploy"]
    workflow_events = set().union(*(_as_set(w["event"]) for w in doc["when"]))
    assert workflow_events == {"push", "pull_request"}
    assert "when" not in steps["validate"], "validate runs for every workflow event"
    for name in ("build-image", "compile", "deploy"):
        (cond,) = _when(steps[name])
        assert _as_set(cond["event"]) == {"push"}, name
        assert _as_set(cond["branch"]) == PROD_BRANCHES, name


def test_woodpecker_image_build_uses_buildx_with_credentials_from_secrets():
    build = woodpecker()["steps"]["build-image"]
    assert build["image"].startswith("woodpeckerci/plugin-docker-buildx:")
    settings = build["settings"]
    assert settings["registry"] == "zot-registry:5050"
    # one image per project, tagged by commit only (never latest); compile records that tag
    assert settings["repo"] == "zot-registry:5050/__IMAGE_NAME__"
    assert settings["tags"] == ["${CI_COMMIT_SHA}"]
    compile_env = woodpecker()["steps"]["compile"]["environment"]
    assert compile_env["MBT_RUNNER_IMAGE"] == f"{settings['repo']}:${{CI_COMMIT_SHA}}"
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


def test_woodpecker_commands_are_real_mbt_subcommands_with_real_flags():
    top = subprocess.run([str(MBT), "--help"], capture_output=True, text=True, timeout=120, check=False).stdout
    seen = set()
    for name, step in woodpecker()["steps"].items():
        for line in step.get("commands", []):
            words = shlex.split(line)
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
