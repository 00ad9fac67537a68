"""The registry lines of the `mbt run` summary: the promotion decision (awaiting approval said
clearly) and the model version a serving run used."""

from __future__ import annotations

from airflow_mbt.cli.execution import _lifecycle_lines

PROMOTION = {"model_name": "churn_model", "alias": "champion", "challenger": {"version": "4"},
             "reason": "challenger roc_auc=0.8 beats champion roc_auc=0.7"}


def test_promoted_and_awaiting_approval():
    steps = [{"name": "promote", "summary": {**PROMOTION, "decision": "promoted"}}]
    assert _lifecycle_lines({"steps": steps}) == [
        "  registry:      version 4 promoted as churn_model@champion "
        "(challenger roc_auc=0.8 beats champion roc_auc=0.7)"]
    steps.append({"name": "apply_promotion", "summary": {**PROMOTION, "decision": "awaiting_approval"}})
    (line,) = _lifecycle_lines({"steps": steps})
    assert "version 4 AWAITING APPROVAL: churn_model@champion not moved" in line


def test_served_version_and_run_id_flow():
    ref = {"model_name": "churn_model", "alias": "champion", "version": "4", "run_id": "abc"}
    assert _lifecycle_lines({"steps": [{"name": "load_model", "summary": ref}]}) == [
        "  model:         churn_model@champion = version 4 (MLflow run abc)"]
    pinned = {"model_name": None, "alias": None, "version": None, "run_id": "abc"}
    assert _lifecycle_lines({"steps": [{"name": "load_model", "summary": pinned}]}) == []
