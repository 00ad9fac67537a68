"""Step ``promote`` (training with ``training.registration``): the champion gate.

It re-scores the current champion (``model_name@alias``) on THIS run's test set, so both models
are compared on the same holdout, on ``compare_on`` (lower is better for log_loss, rmse, mae,
mape). ``promote: if_better`` moves the alias only when the challenger is strictly better (or
there is no champion yet), ``always`` moves it, ``never`` only records. The validation criteria
already passed in ``evaluate``. With ``approval: required`` the step does not move the alias: the
decision is ``awaiting_approval`` and ``apply_promotion`` moves it once a human approved (Airflow's
ApprovalOperator between the two tasks; ``mbt run`` stops there and says so).

Output ``promotion`` (also the step's run_results summary and on the challenger version's tags
``mbt_promotion*``): ``{"decision": promoted|not_promoted|awaiting_approval|already_champion,
"reason", "model_name", "alias", "metric", "lower_is_better", "challenger": {"version", "run_id",
"value"}, "champion": {"version", "run_id", "value"} | None, "alias_moved": bool}``. When the
alias moved, the summary names the model's Airflow asset (``asset_uri``) for the operator to emit.
Re-running the step after the alias moved to this version reports ``already_champion`` and does
not move anything (idempotent).
"""

from __future__ import annotations

from typing import Any

from airflow_mbt.constants import LOWER_IS_BETTER
from airflow_mbt.steps.error_location import with_pipeline_location

PROMOTED, NOT_PROMOTED, AWAITING, ALREADY = "promoted", "not_promoted", "awaiting_approval", "already_champion"


def decide(policy: str, metric: str, challenger: float | None, champion: float | None,
           has_champion: bool) -> tuple[bool, str]:
    """``(challenger wins, reason)`` for ``promote: policy`` (pure)."""
    if policy == "never":
        return False, "promote: never"
    if policy == "always":
        return True, "promote: always"
    if not has_champion:
        return True, "no champion yet"
    if challenger is None:
        return False, f"the challenger has no {metric}"
    if champion is None:
        return True, f"the champion has no {metric} on this test set"
    lower = metric in LOWER_IS_BETTER
    better = challenger < champion if lower else challenger > champion
    verb = "beats" if better else "does not beat"
    return better, f"challenger {metric}={challenger:.6g} {verb} champion {metric}={champion:.6g}"


def _rescore(ctx, run_id: str, test) -> tuple[dict[str, Any], str | None]:
    """``(metrics of the champion on this test set, None)``, or ``({}, why)`` when the champion's
    model files are gone: a champion that cannot be loaded cannot serve either, so it is treated as
    a champion without a score (the challenger wins an ``if_better`` gate) and the reason says so.
    Transient MLflow or S3 failures still raise (retryable)."""
    from airflow_mbt.ml import scoring
    from airflow_mbt.steps.evaluate import score_test
    from airflow_mbt.tracking.model_fetch import ModelFilesMissing, fetch

    try:
        model_dir, pre = fetch(ctx.runtime, run_id, ctx.step_dir / "champion")
    except ModelFilesMissing as exc:
        ctx.log.warning("the champion cannot be re-scored: %s", exc.message)
        return {}, exc.message
    framework, model, meta = scoring.load(model_dir, ctx.runtime)
    return score_test(framework, model, meta, pre, test)[2], None


def _tags(client, name: str, version: str, doc: dict) -> None:
    champion = doc["champion"] or {}
    tags = {"mbt_promotion": doc["decision"], "mbt_promotion.reason": doc["reason"],
            "mbt_promotion.metric": doc["metric"],
            "mbt_promotion.challenger": str(doc["challenger"]["value"]),
            "mbt_promotion.champion": str(champion.get("value")),
            "mbt_promotion.champion_version": str(champion.get("version"))}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value[:5000])


@with_pipeline_location
def run(ctx, inputs: dict) -> dict:
    from mlflow.exceptions import MlflowException

    from airflow_mbt.errors import InfraError
    from airflow_mbt.step_specs import model_asset
    from airflow_mbt.tracking import registry, store

    reg = ctx.config["training"]["registration"]
    name, alias, metric = reg["model_name"], reg["alias"], reg["compare_on"]
    mlflow_run, metrics = inputs["mlflow_run"], inputs["metrics"]
    mine = {"version": mlflow_run["model_version"], "run_id": mlflow_run["run_id"],
            "value": (metrics.get("metrics") or {}).get(metric)}
    with store.session(ctx.runtime) as target:
        client = store.client(target)
        try:
            current = registry.alias_version(client, name, alias)
            champion = None
            if current is not None:
                champion = {"version": str(current.version), "run_id": current.run_id, "value": None}
            if champion and champion["version"] == mine["version"]:
                wins, reason, decision = False, f"version {mine['version']} already holds {alias}", ALREADY
            else:
                unloadable = None
                if champion:
                    scores, unloadable = _rescore(ctx, champion["run_id"], inputs["test_set"])
                    champion["value"] = scores.get(metric)
                wins, reason = decide(reg["promote"], metric, mine["value"], champion and champion["value"],
                                      champion is not None)
                if unloadable and champion is not None:
                    champion["unloadable"] = unloadable
                    reason = f"champion version {champion['version']} cannot be loaded ({reason})"
                decision = (AWAITING if reg["approval"] == "required" else PROMOTED) if wins else NOT_PROMOTED
            doc = {"decision": decision, "reason": reason, "model_name": name, "alias": alias, "metric": metric,
                   "lower_is_better": metric in LOWER_IS_BETTER, "challenger": mine, "champion": champion,
                   "alias_moved": decision == PROMOTED}
            if decision == PROMOTED:
                registry.move_alias(client, name, alias, mine["version"])
            _tags(client, name, mine["version"], doc)
        except MlflowException as exc:
            raise InfraError("MLflow", f"{store.redact(target.tracking_uri)}: {exc.error_code}: "
                                       f"{str(exc.message)[:300]}") from None
    ctx.log.info("promotion of %s version %s: %s (%s)", name, mine["version"], decision, reason)
    if decision == AWAITING:
        ctx.log.warning("%s@%s NOT moved: awaiting approval (Airflow: approve the %r task; locally the alias "
                        "stays until a human moves it)", name, alias, "approve_promotion")
    ctx.summary.update(doc)
    if doc["alias_moved"]:
        ctx.summary["asset_uri"] = model_asset(name, alias)[1]
    return {"promotion": doc}
