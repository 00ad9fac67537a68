"""MBTStepOperator pieces that need no running task: failure classification, the run id of a DAG
run, template rendering with ``mbt_run_id`` and the manifest identity check."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from airflow_manifests import build_manifest

from airflow_mbt.errors import (AuthenticationError, DataContractError, InfraError, MBTInputError,
                                RegistryConflictError, ValidationCriteriaError)
from airflow_mbt.operators.failures import airflow_failures, is_retryable
from airflow_mbt.operators.run_id import run_id_for_dag_run
from airflow_mbt.operators.step import MBTStepOperator, check_manifest_identity

WHEN = datetime(2026, 2, 1, 3, 4, 5, tzinfo=timezone.utc)


def _dag_run(dag_id="training_churn", run_id="scheduled__2026-02-01T03:04:05+00:00", logical_date=WHEN,
             run_after=WHEN):
    from airflow.models.dagrun import DagRun

    return DagRun(dag_id=dag_id, run_id=run_id, logical_date=logical_date, run_after=run_after)


@pytest.mark.parametrize("exc", [
    MBTInputError("bad yaml", file="pipelines/x.yaml", line=3, field="training.split"),
    DataContractError("column tenure missing"),
    ValidationCriteriaError("roc_auc 0.61 < 0.7"),
    AuthenticationError("PostgreSQL", "password rejected for mbt_user@127.0.0.1:5432"),
])
def test_non_retryable_errors_fail_the_task_without_retry(exc):
    from airflow.sdk.exceptions import AirflowFailException

    assert not is_retryable(exc)
    with pytest.raises(AirflowFailException) as err:
        with airflow_failures():
            raise exc
    assert err.value.__cause__ is exc
    assert type(exc).__name__ in str(err.value) and str(exc) in str(err.value)


@pytest.mark.parametrize("exc", [InfraError("S3", "endpoint unreachable"), RegistryConflictError("lost race"),
                                 RuntimeError("boom"), OSError("disk full")])
def test_other_errors_propagate_unchanged_for_retry(exc):
    assert is_retryable(exc)
    with pytest.raises(type(exc)) as err:
        with airflow_failures():
            raise exc
    assert err.value is exc


def test_run_id_is_stable_per_dag_run_and_follows_logical_date():
    first, again = run_id_for_dag_run(_dag_run()), run_id_for_dag_run(_dag_run())
    assert first == again and first.startswith("run_20260201_030405_")
    other = run_id_for_dag_run(_dag_run(run_id="manual__2026-02-01T03:04:05+00:00"))
    assert other != first and other.startswith("run_20260201_030405_")


def test_run_id_without_logical_date_uses_run_after():
    after = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    rid = run_id_for_dag_run(_dag_run(run_id="manual__x", logical_date=None, run_after=after))
    assert rid.startswith("run_20260506_070809_")


def test_mbt_run_id_is_available_in_templates():
    op = MBTStepOperator(pipeline="training_churn", step="train_model", manifest_uri="/m/{{ mbt_run_id }}.json",
                         manifest_hash="sha256:" + "0" * 64, target="dev", project_dir="/proj/{{ dag_run.dag_id }}")
    dag_run = _dag_run()
    op.render_template_fields({"dag_run": dag_run})
    assert op.manifest_uri == f"/m/{run_id_for_dag_run(dag_run)}.json"
    assert op.project_dir == "/proj/training_churn"
    assert op.task_id == "train_model"
    assert set(MBTStepOperator.template_fields) >= {"manifest_uri", "manifest_hash", "target", "project_dir"}


def test_manifest_identity_check():
    m = build_manifest("training_churn")
    check_manifest_identity(m, "training_churn", "dev")
    with pytest.raises(MBTInputError, match="is for pipeline 'training_churn', not 'other'"):
        check_manifest_identity(m, "other", "dev")
    with pytest.raises(MBTInputError, match="compiled for target 'dev'") as err:
        check_manifest_identity(m, "training_churn", "prod")
    assert "--target prod" in err.value.hint
