"""The model-lifecycle pieces of a DAG (used by ``dag_factory``; nothing here touches the network).

- ``schedule(manifest)``: the DAG schedule. A serving pipeline with ``model_source.model_name``
  and ``deployment.on_model_change: true`` runs on its cadence OR when the model's asset gets an
  event (``AssetOrTimeSchedule``); every other pipeline keeps ``manifest.schedule``.
- ``outlets(manifest, step)``: ``promote`` and ``apply_promotion`` declare an ``AssetAlias`` of the
  model; ``MBTStepOperator`` adds the model asset's event to it only when the alias moved.
- ``approval_task(manifest, promote_task_id)``: the ``ApprovalOperator`` placed between ``promote``
  and ``apply_promotion`` with ``registration.approval: required``; its form shows the decision
  and both models' metrics (from the promote task's XCom summary). Reject skips
  ``apply_promotion``: the alias stays and the run succeeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mbt.step_specs import APPLY_PROMOTION_STEP, APPROVAL_TASK, PROMOTE_STEP, model_asset

if TYPE_CHECKING:
    from airflow_mbt.manifest import Manifest

BODY = """\
{% set c = s.champion or {"version": "none yet", "run_id": "-", "value": "-"} %}\
### Promote `{{ s.model_name }}` version {{ s.challenger.version }} to `{{ s.alias }}`?

| | version | MLflow run | {{ s.metric }} on this run's test set |
|---|---|---|---|
| challenger | {{ s.challenger.version }} | `{{ s.challenger.run_id }}` | {{ s.challenger.value }} |
| champion | {{ c.version }} | `{{ c.run_id }}` | {{ c.value }} |

Decision of the gate: **{{ s.decision }}** ({{ s.reason }}).
Approve moves `{{ s.alias }}`; Reject leaves it where it is.
"""


def _registration(manifest: Manifest) -> Any:
    return (manifest.config.get("training") or {}).get("registration")


def model_source(manifest: Manifest) -> tuple[str, str] | None:
    """``(model_name, alias)`` a serving pipeline follows (``None`` for a pinned run id)."""
    source = (manifest.config.get("serving") or {}).get("model_source") or {}
    name = source.get("model_name")
    return (str(name), str(source.get("alias") or "champion")) if name else None


def schedule(manifest: Manifest) -> Any:
    followed = model_source(manifest)
    if not followed or not (manifest.config.get("deployment") or {}).get("on_model_change"):
        return manifest.schedule
    from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

    name, uri = model_asset(*followed)
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(manifest.schedule, timezone="UTC"),
                               assets=[Asset(name=name, uri=uri)])


def outlets(manifest: Manifest, step: str) -> list[Any]:
    registration = _registration(manifest)
    if not registration or step not in (PROMOTE_STEP.name, APPLY_PROMOTION_STEP.name):
        return []
    from airflow.sdk import AssetAlias

    return [AssetAlias(name=f"{model_asset(registration['model_name'], registration['alias'])[0]}__events")]


def approval_task(manifest: Manifest) -> Any | None:
    registration = _registration(manifest)
    names = [s.name for s in manifest.steps]
    if not registration or registration.get("approval") != "required" or APPLY_PROMOTION_STEP.name not in names:
        return None
    from airflow_mbt.operators.approval import MBTApprovalOperator

    pull = f"{{% set s = ti.xcom_pull(task_ids='{PROMOTE_STEP.name}')['summary'] %}}"
    return MBTApprovalOperator(task_id=APPROVAL_TASK, decision_task=PROMOTE_STEP.name,
                               subject=f"Promote {registration['model_name']} to {registration['alias']}?",
                               body=pull + BODY)
