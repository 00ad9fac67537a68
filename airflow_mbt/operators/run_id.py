"""The MBT run id of an Airflow DAG run, for operators and templates.

Every task of a DAG run (and every retry) derives the same id from the DAG run via
``runtime.run_id.run_id_from_airflow``. Operators add it to the template context as
``mbt_run_id`` before rendering, so ``"{{ mbt_run_id }}"`` works in any templated field.
"""

from __future__ import annotations

from typing import Any

CONTEXT_KEY = "mbt_run_id"
XCOM_KEY = "mbt_run_id"
RUN_ID_TEMPLATE = "{{ mbt_run_id }}"


def run_id_for_dag_run(dag_run: Any) -> str:
    """``run_YYYYMMDD_HHMMSS_xxxx`` from the DAG run's logical date (or ``run_after`` when the
    run has no logical date) and a digest of ``(dag_id, run_id)``."""
    from airflow_mbt.runtime.run_id import run_id_from_airflow

    when = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    return run_id_from_airflow(dag_run.dag_id, dag_run.run_id, when)


def run_id_from_context(context: Any) -> str:
    if context.get(CONTEXT_KEY):
        return str(context[CONTEXT_KEY])
    return run_id_for_dag_run(context["dag_run"])


class RunIdTemplateMixin:
    """Puts ``mbt_run_id`` into the context before the operator's fields are rendered."""

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        if context.get("dag_run") is not None and CONTEXT_KEY not in context:
            context[CONTEXT_KEY] = run_id_for_dag_run(context["dag_run"])
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]  # BaseOperator's, by MRO
