"""``MBTApprovalOperator``: Airflow's ``ApprovalOperator`` that asks only when there is something
to approve. It reads the decision of ``decision_task`` (the ``promote`` step's XCom summary):
``awaiting_approval`` opens the human-in-the-loop form; any other decision (the challenger lost,
``promote: never``, already champion) skips this task and, with it, ``apply_promotion``.
Imported only by DAGs whose training registration requires approval.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowSkipException

AWAITING = "awaiting_approval"


class MBTApprovalOperator(ApprovalOperator):
    def __init__(self, *, decision_task: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision_task = decision_task

    def execute(self, context: Any) -> Any:
        pulled = context["ti"].xcom_pull(task_ids=self.decision_task) or {}
        decision = (pulled.get("summary") or {}).get("decision")
        if decision != AWAITING:
            raise AirflowSkipException(f"nothing to approve: the promote step decided {decision!r}")
        return super().execute(context)
