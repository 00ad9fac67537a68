"""Registration and serving-by-alias authoring: schema, positioned errors, defaults, the promote
steps in the manifest, and the DAG pieces (approval task, asset alias outlets, asset-or-time
schedule) built from a manifest without any network."""

from __future__ import annotations

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import Manifest
from airflow_mbt.pipeline.compiler import compile_pipeline
from airflow_mbt.project.profiles import resolve_target
from airflow_mbt.project.root import Project
from airflow_mbt.scaffold.project_init import init_project
from airflow_mbt.steps.promote import decide

TRAIN = "training_churn_model_v1"
SERVE = "serving_churn_model_v1"
REGISTRATION = """
  registration:
    model_name: churn_model
    approval: {approval}
"""


@pytest.fixture()
def proj(tmp_path) -> Project:
    return Project(init_project("demo", tmp_path))


def _set_registration(proj: Project, approval: str = "none", extra: str = "") -> None:
    path = proj.root / "pipelines" / f"{TRAIN}.yaml"
    text = path.read_text()
    if "registration:" in text:  # the scaffold may already register: replace its block
        start = text.index("  registration:")
        end = text.index("\n  evaluation:", start) if "\n  evaluation:" in text[start:] else len(text)
        text = text[:start].rstrip("\n") + "\n" + text[end + 1:]
    text = text.replace("training:\n", "training:" + REGISTRATION.format(approval=approval) + extra, 1)
    path.write_text(text)


def _serve_alias(proj: Project, source: str) -> None:
    path = proj.root / "pipelines" / f"{SERVE}.yaml"
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "model_source:")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    path.write_text("\n".join(lines[:start + 1] + [f"    {x}" for x in source.splitlines()] + lines[end:]) + "\n")


def build(proj: Project, name: str = TRAIN) -> Manifest:
    return compile_pipeline(proj, name, resolve_target(proj, None, env={}), None, {})


def test_registration_compiles_promote_with_defaults(proj):
    _set_registration(proj)
    m = build(proj)
    assert [s.name for s in m.steps][-2:] == ["log_run", "promote"]
    assert m.step("promote").depends_on == ("split_data", "evaluate", "log_run")
    assert m.config["training"]["registration"] == {"model_name": "churn_model", "alias": "champion",
                                                    "promote": "if_better", "compare_on": "roc_auc",
                                                    "approval": "none"}
    assert m.schema_version == 2


def test_approval_required_adds_apply_promotion(proj):
    _set_registration(proj, "required")
    m = build(proj)
    assert [s.name for s in m.steps][-3:] == ["log_run", "promote", "apply_promotion"]
    assert m.step("apply_promotion").depends_on == ("promote",)


def test_compare_on_unknown_metric_is_positioned(proj):
    _set_registration(proj, extra="    compare_on: roc_acu\n")
    with pytest.raises(MBTInputError) as err:
        build(proj)
    assert err.value.field == "training.registration.compare_on" and err.value.line and err.value.col
    assert "roc_auc" in (err.value.hint or "")


def test_bad_promote_policy_is_a_schema_error(proj):
    _set_registration(proj, extra="    promote: sometimes\n")
    with pytest.raises(MBTInputError) as err:
        build(proj)
    assert "promote" in str(err.value) and err.value.line


def test_serving_by_alias_needs_no_run_id(proj):
    m = build(proj, SERVE)  # the scaffold serves churn_model@champion
    assert m.config["serving"]["model_source"]["model_name"] == "churn_model"
    _serve_alias(proj, "registry: mlflow\nmodel_name: churn_model")
    m = build(proj, SERVE)
    assert m.config["serving"]["model_source"]["alias"] == "champion"
    assert "run_id" not in m.config["serving"]["model_source"]
    assert [s.name for s in m.steps][0] == "load_model"
    assert "model_ref" in m.step("publish").inputs


@pytest.mark.parametrize("source, field, words", [
    ("registry: mlflow", "serving.model_source", "exactly one of run_id or model_name"),
    ("run_id: 0123456789abcdef0123456789abcdef\nmodel_name: churn_model", "serving.model_source", "exactly one"),
    ("run_id: 0123456789abcdef0123456789abcdef\nalias: champion", "serving.model_source.alias", "with model_name"),
])
def test_model_source_mistakes_are_positioned(proj, source, field, words):
    _serve_alias(proj, source)
    with pytest.raises(MBTInputError) as err:
        build(proj, SERVE)
    assert err.value.field == field and words in err.value.message and err.value.line


def test_on_model_change_needs_model_name(proj):
    _serve_alias(proj, "run_id: 0123456789abcdef0123456789abcdef")  # the scaffold has on_model_change: true
    with pytest.raises(MBTInputError) as err:
        build(proj, SERVE)
    assert err.value.field == "deployment.on_model_change"


@pytest.mark.parametrize("policy, metric, mine, theirs, has, wins", [
    ("if_better", "roc_auc", 0.8, 0.7, True, True),
    ("if_better", "roc_auc", 0.7, 0.7, True, False),    # a tie keeps the champion
    ("if_better", "roc_auc", 0.6, 0.7, True, False),
    ("if_better", "rmse", 1.0, 2.0, True, True),        # lower is better
    ("if_better", "rmse", 3.0, 2.0, True, False),
    ("if_better", "roc_auc", 0.5, None, False, True),   # no champion yet
    ("always", "roc_auc", 0.1, 0.9, True, True),
    ("never", "roc_auc", 0.9, 0.1, True, False),
])
def test_decide(policy, metric, mine, theirs, has, wins):
    assert decide(policy, metric, mine, theirs, has)[0] is wins


def _dag(manifest: Manifest):
    from airflow_mbt.dag_factory import build_dag

    return build_dag(manifest, "file:///tmp/manifest.json")


def test_dag_with_approval_and_asset_alias(proj):
    from airflow.sdk import AssetAlias

    from airflow_mbt.operators.approval import MBTApprovalOperator

    _set_registration(proj, "required")
    dag = _dag(build(proj))
    approve = dag.get_task("approve_promotion")
    assert isinstance(approve, MBTApprovalOperator)
    assert approve.upstream_task_ids == {"promote"}
    assert dag.get_task("apply_promotion").upstream_task_ids == {"promote", "approve_promotion"}
    assert "challenger" in approve.body and "champion" in approve.body
    outlets = dag.get_task("promote").outlets
    assert len(outlets) == 1 and isinstance(outlets[0], AssetAlias)
    assert dag.get_task("train_model").outlets == []


def test_serving_on_model_change_is_asset_or_time(proj):
    from airflow.sdk import Asset, AssetOrTimeSchedule

    _serve_alias(proj, "registry: mlflow\nmodel_name: churn_model\nalias: champion")  # + scaffold's on_model_change
    dag = _dag(build(proj, SERVE))
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.asset_condition.objects == (
        Asset(name="mbt_model__churn_model__champion", uri="x-mlflow-model://churn_model/champion"),)


@pytest.mark.parametrize("champion", [None, {"version": "3", "run_id": "r3", "value": 0.71}])
def test_approval_form_renders_with_and_without_a_champion(champion):
    import jinja2

    from airflow_mbt.operators.lifecycle import BODY

    summary = {"model_name": "churn_model", "alias": "champion", "metric": "roc_auc", "decision": "awaiting_approval",
               "reason": "promote: always", "challenger": {"version": "4", "run_id": "r4", "value": 0.74},
               "champion": champion}
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(BODY).render(s=summary)
    assert "| challenger | 4 | `r4` | 0.74 |" in text
    assert ("| champion | 3 | `r3` | 0.71 |" if champion else "| champion | none yet |") in text


PARSE_PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print("RESULT " + json.dumps({"dags": sorted(bag.dags), "errors": {k: str(v) for k, v in bag.import_errors.items()},
      "loaded": sorted(m for m in ("boto3", "botocore", "airflow.providers.amazon.aws.assets.s3") if m in sys.modules)}))
"""


def test_model_asset_dags_parse_without_provider_asset_discovery(proj, tmp_path):
    """A serving DAG following a model alias (asset-or-time schedule) and a training DAG whose
    promote step has an asset-alias outlet parse through the real loader without Airflow's
    provider asset-URI discovery, which imports the amazon provider and boto3 (about 1 s of a
    parse; the asset scheme is an ``x-`` one, see docs/lifecycle.md)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    _set_registration(proj)
    _serve_alias(proj, "registry: mlflow\nmodel_name: churn_model\nalias: champion")  # + scaffold's on_model_change
    for name in (TRAIN, SERVE):
        build(proj, name).write(tmp_path / "manifests" / name / "manifest.json")
    loader = Path(__file__).resolve().parents[3] / "dags" / "mbt_loader.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MBT_", "_AIRFLOW"))}
    env.update(MBT_MANIFESTS_URI=str(tmp_path / "manifests"), MBT_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", PARSE_PROBE, str(loader)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
    assert result == {"dags": sorted((SERVE, TRAIN)), "errors": {}, "loaded": []}
