"""Every task of a DAG run executes the release the run started with.

Each task re-parses the DAG file, so it is built from whatever manifest is ``current`` when it
starts; a ``mbt deploy`` or ``mbt rollback`` in the middle of a run would otherwise give the
run's remaining tasks another release. The pin fixes that:

* a root task (no upstream task) pins a release: the one a sibling root already pinned in this
  DAG run, else its own (the one current when it started), and pushes it to XCom
  ``mbt_release``;
* every other task reads the pin of the roots (the first root in task-id order that has one)
  and executes that release, fetched by hash from its immutable copy
  (``<pipeline>/<hash>.json``), whatever ``current`` says now.

Retries and clears of a non-root task keep the run's release. A retry or clear of a root task
re-pins (Airflow deletes a task's XComs when it runs again), as does clearing the whole run.
Two roots that start at the same moment while a deploy lands in between can pin different
releases; the downstream tasks then follow the first root in task-id order and a warning is
logged (documented in docs/operations.md).
"""

from __future__ import annotations

import logging
from typing import Any

PIN_KEY = "mbt_release"

log = logging.getLogger("airflow_mbt.operators.release_pin")


def pinned_release(context: Any, task: Any, own_hash: str) -> str:
    """The content hash this task must execute (see the module docstring); pushes the pin when
    ``task`` is a root. Without a DAG or a task instance (tests, ``mbt step execute``) it is
    ``own_hash``."""
    ti = context.get("ti")
    dag = getattr(task, "dag", None)
    if ti is None or dag is None:
        return own_hash
    roots = sorted(t.task_id for t in dag.roots)
    is_root = task.task_id in roots
    others = [r for r in roots if r != task.task_id]
    pulled = ti.xcom_pull(task_ids=others, key=PIN_KEY) if others else []
    pins = [p for p in (pulled or []) if isinstance(p, str) and p]
    if len(set(pins)) > 1:
        log.warning("mbt: the roots of this DAG run pinned different releases %s; following %s",
                    sorted(set(pins)), pins[0])
    if is_root:
        pin = pins[0] if pins else own_hash
        ti.xcom_push(key=PIN_KEY, value=pin)
    elif pins:
        pin = pins[0]
    else:
        log.warning("mbt: no release pinned by the roots %s of this DAG run; executing %s", roots, own_hash)
        pin = own_hash
    if pin != own_hash:
        log.info("mbt: this DAG run is pinned to release %s (the DAG file now shows %s)", pin, own_hash)
    return pin
