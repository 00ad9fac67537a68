"""Fuzz tier (hypothesis) over the YAML loader, the validator, the compiler and ``--vars``.

Generated inputs: random bytes and text as a pipeline file, random mutations of a valid pipeline
and of a valid profiles.yaml (values replaced by hostile ones, keys deleted or added, YAML
fragments spliced into the text), and random ``--vars`` items. The CLI's ``main`` runs in-process
and must exit 0 or 2 with no traceback and no "unexpected" error; an exit 2 is one message with
a hint. No example may take over 5 s (``deadline``).

Budget: the ``mbt-fuzz`` profile is derandomized (the same examples on every run, CI included)
and sized by ``FUZZ_EXAMPLES`` (default 100 per CLI property, 3x for ``parse_vars``, a third for
``--vars`` through the CLI: about 630 examples, some 15-20 s of CPU plus the sklearn warm-up).
``MBT_FUZZ_EXAMPLES=5000 pytest tests/unit/pipeline/test_fuzz_authoring.py`` digs deeper locally.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostile_cases import PIPE, PROFILES, SK
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_mbt.cli.main import main
from airflow_mbt.errors import MBTInputError
from airflow_mbt.project.render import parse_vars
from airflow_mbt.scaffold.project_init import init_project

FUZZ_EXAMPLES = int(os.environ.get("MBT_FUZZ_EXAMPLES", "100"))
settings.register_profile("mbt-fuzz", derandomize=True, deadline=timedelta(seconds=5), database=None,
                          print_blob=False, max_examples=FUZZ_EXAMPLES,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.data_too_large])
FUZZ = settings.get_profile("mbt-fuzz")
NAME = "training_churn_model_v1"

INTERESTING = ["", " ", "sklearn", "h2o_automl", "regression", "multiclass_classification", "local_file",
               "database", "{{ var('x') }}", "{{ var('x', 1) }}", "{{ env_var('HOME') }}", "{{ secret('S') }}",
               "{{ var(", "{{ nope() }}", "}}", "../../etc/passwd", "/etc/hostname", "http://u:p@h:1",
               "0 3 * * *", "roc_auc >= 0.7", "roc_auc", "<run_id>", ".nan", "9" * 30, "\u00e9", "\u202e",
               "customers", "churned", "customer_id", "RandomForestClassifier", "LogisticRegression", "max_iter"]
KEYS = ["password", "api_key", "token", "model", "max_iter", "C", "path", "base_path", "x", "<<", "tables",
        "framework", "config", "seed", "test_size", "classes", "positive_class", "label_column", "steps"]
SPLICES = ["&a ", "*a", "<<: *a\n", "!include ../fragments/x.yaml", "!include /dev/zero", "\t", "\n---\n",
           "[", "{", ": ", "- ", "'", '"', "\x00", "\ufeff", "? ", "!!python/object:os.system ", "&a [*a]",
           "%YAML 1.1\n"]

scalars = (st.none() | st.booleans() | st.integers(-(10 ** 30), 10 ** 30) | st.floats(allow_nan=True)
           | st.text(max_size=12) | st.sampled_from(INTERESTING))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(KEYS), c,
                                                                                       max_size=3), max_leaves=6)


def paths(doc: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += paths(value, at + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += paths(value, at + (i,))
    return out


def mutate(data, doc: Any) -> Any:
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        where = data.draw(st.sampled_from(paths(doc)), label="path")
        if not where:
            continue
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        op = data.draw(st.sampled_from(["replace", "delete", "add"]), label="op")
        if op == "replace":
            parent[where[-1]] = data.draw(values, label="value")
        elif op == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(KEYS), label="key")] = data.draw(values, label="value")
    return doc


def splice(data, text: str) -> str:
    if not data.draw(st.booleans(), label="splice?"):
        return text
    pos = data.draw(st.integers(0, len(text)), label="at")
    piece = data.draw(st.sampled_from(SPLICES) | st.text(max_size=8), label="piece")
    return text[:pos] + piece + text[pos:]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = init_project("proj", tmp_path_factory.mktemp("fuzz"))
    (root / "profiles.yaml").write_text(PROFILES, encoding="utf-8")
    (root / "fragments").mkdir()
    (root / "fragments" / "x.yaml").write_text("a: 1\n", encoding="utf-8")
    os.environ.setdefault("MBT_PLANTED_SECRET", "x")
    for text in (SK, PIPE):  # warm-up: imports (sklearn included) must not count against the deadline
        (root / "pipelines" / f"{NAME}.yaml").write_text(text, encoding="utf-8")
        assert main(["--project-dir", str(root), "compile", NAME, "--target", "dev"]) == 0
    return root


def check_cli(project: Path, capsys, *argv: str) -> None:
    try:
        code = main(["--project-dir", str(project), *argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code in (0, 2), (code, out, err)
    assert "Traceback" not in err and "error: unexpected " not in err, err
    if code == 2:
        assert sum(line.startswith("error:") for line in err.splitlines()) >= 1, err
        assert "\n  hint: " in err, err


def _write(project: Path, rel: str, content: str | bytes) -> None:
    path = project / rel
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")


@FUZZ
@given(content=st.binary(max_size=400) | st.text(max_size=400))
def test_random_bytes_and_text(project, capsys, content):
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    _write(project, f"pipelines/{NAME}.yaml", content)
    check_cli(project, capsys, "validate", NAME)


@FUZZ
@given(data=st.data())
def test_mutated_pipelines_validate_and_compile(project, capsys, data):
    doc = mutate(data, yaml.safe_load(data.draw(st.sampled_from([PIPE, SK]), label="base")))
    text = splice(data, yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    _write(project, f"pipelines/{NAME}.yaml", text)
    check_cli(project, capsys, data.draw(st.sampled_from(["validate", "compile"]), label="cmd"), NAME,
              "--target", "dev")


@FUZZ
@given(data=st.data())
def test_mutated_profiles(project, capsys, data):
    _write(project, f"pipelines/{NAME}.yaml", PIPE)
    doc = mutate(data, yaml.safe_load(PROFILES))
    _write(project, "profiles.yaml", splice(data, yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)))
    try:
        check_cli(project, capsys, "compile", NAME, "--target", data.draw(st.sampled_from(["dev", "prod"])))
    finally:
        shutil.copyfile(project / "profiles.yaml", project / "profiles.last.yaml")
        _write(project, "profiles.yaml", PROFILES)


vars_items = st.lists(st.text(max_size=40) | st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), st.text(
    max_size=30) | st.sampled_from(INTERESTING)) | st.builds(lambda t: "{" + t + "}", st.text(max_size=40)),
    max_size=4)


@settings(FUZZ, max_examples=FUZZ_EXAMPLES * 3)
@given(items=vars_items)
def test_parse_vars(items):
    try:
        out = parse_vars(items)
    except MBTInputError as err:
        assert err.field == "--vars" or err.file == "--vars", err
        assert err.hint, err
    else:
        assert isinstance(out, dict)


@settings(FUZZ, max_examples=max(FUZZ_EXAMPLES // 3, 10))
@given(items=vars_items)
def test_vars_through_the_cli(project, capsys, items):
    _write(project, f"pipelines/{NAME}.yaml", PIPE)
    argv = [arg for item in items for arg in ("--vars", item)]
    check_cli(project, capsys, "validate", NAME, *argv)
