"""The step registry: the built-in steps' names, typed inputs/outputs, implementing modules, and
the two step graphs.

At the bottom of the import graph (it imports only ``constants``) so that the compiler, the DAG
factory and the runtime can all read it without importing any step. The runtime finds a step's
code through ``step_spec(name).module`` (a module defining ``run(ctx, inputs) -> outputs``).
Artifact kinds: see ``constants.ArtifactKind``.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_mbt.constants import ArtifactKind, PipelineKind

TABLE, TABLE_STREAM, JSON, DIR = ArtifactKind.TABLE, ArtifactKind.TABLE_STREAM, ArtifactKind.JSON, ArtifactKind.DIR
ARTIFACT_KINDS = tuple(ArtifactKind)


@dataclass(frozen=True)
class StepSpec:
    name: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[tuple[str, ArtifactKind], ...] = ()  # (artifact name, kind)
    module: str = ""  # dotted module implementing ``run(ctx, inputs) -> outputs``
    description: str = ""

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.outputs)


def _s(name: str, inputs: list[str], outputs: list[tuple[str, ArtifactKind]], description: str) -> StepSpec:
    return StepSpec(name=name, inputs=tuple(inputs), outputs=tuple(outputs),
                    module=f"airflow_mbt.steps.{name}", description=description)


TRAINING_STEPS: tuple[StepSpec, ...] = (
    _s("load_data", [], [("raw_data", TABLE)], "Read the label table through the data connector"),
    _s("split_data", ["raw_data"], [("train_set", TABLE), ("test_set", TABLE)],
       "Apply custom transforms, drop ignored columns, split train/test"),
    _s("train_model", ["train_set"], [("model", DIR), ("preprocessor", JSON)],
       "Fit preprocessing and the model"),
    _s("evaluate", ["model", "preprocessor", "test_set"], [("metrics", JSON), ("plots", DIR)],
       "Compute metrics and plots, enforce validation criteria"),
    _s("log_run", ["model", "preprocessor", "metrics", "plots"], [("mlflow_run", JSON)],
       "Log params, metrics, tags, model and artifacts to MLflow"),
)

SERVING_STEPS: tuple[StepSpec, ...] = (
    _s("load_model", [], [("model", DIR), ("preprocessor", JSON), ("model_ref", JSON)],
       "Resolve the model (run id, or registered model alias once per run) and fetch it from MLflow"),
    _s("load_scoring_data", [], [("scoring_data", TABLE_STREAM)], "Read the scoring table"),
    _s("apply_transforms", ["preprocessor", "scoring_data"], [("features", TABLE_STREAM)],
       "Check the feature contract and replay the training preprocessing"),
    _s("predict", ["model", "features"], [("predictions", TABLE_STREAM)], "Score the features"),
    _s("publish", ["predictions", "model_ref"], [("publish_result", JSON)], "Write predictions to the destination"),
)

# Added to a serving pipeline only when ``serving.monitoring`` is configured (docs/monitoring.md);
# publish then waits for it (``GATES``), so ``on_breach: fail`` stops the run before publishing.
MONITOR_STEP = _s("monitor", ["model", "preprocessor", "model_ref", "scoring_data", "predictions"],
                  [("monitoring", JSON)],
                  "Drift of the scoring data and predictions against the training reference (PSI)")
OPTIONAL_STEPS: dict[str, tuple[StepSpec, ...]] = {PipelineKind.SERVING: (MONITOR_STEP,)}
GATES: dict[str, tuple[str, ...]] = {"publish": ("monitor",)}  # step -> steps it waits for when present

# appended to SERVING_STEPS by the compiler when the pipeline has ``serving.partitions``
VERIFY_STEP = _s("verify", ["publish_result"], [("verify_result", JSON)],
                 "Check that the partitions' published rows add up to the source rows of the run")

# Added after log_run when ``training.registration`` is configured (``training_steps``).
PROMOTE_STEP = _s("promote", ["mlflow_run", "metrics", "test_set"], [("promotion", JSON)],
                  "Re-score the champion on this test set, move the alias if the challenger wins")
# Added after promote with ``registration.approval: required``; Airflow runs it only once approved.
APPLY_PROMOTION_STEP = _s("apply_promotion", ["promotion"], [("promotion_applied", JSON)],
                          "Move the alias to the approved challenger")
APPROVAL_TASK = "approve_promotion"  # the Airflow ApprovalOperator between the two


def model_asset(model_name: str, alias: str) -> tuple[str, str]:
    """``(name, uri)`` of the Airflow asset standing for ``model_name@alias`` (no network)."""
    return f"mbt_model__{model_name}__{alias}", f"x-mlflow-model://{model_name}/{alias}"
MODEL_REF_STEP = "load_model"  # its ``model_ref`` output: the MLflow run/version a serving run uses

STEPS_BY_KIND: dict[str, tuple[StepSpec, ...]] = {PipelineKind.TRAINING: TRAINING_STEPS,
                                                  PipelineKind.SERVING: SERVING_STEPS}
LIFECYCLE_STEPS = (PROMOTE_STEP, APPLY_PROMOTION_STEP)
ALL_STEP_NAMES = tuple(s.name for s in TRAINING_STEPS + SERVING_STEPS + (MONITOR_STEP,) + LIFECYCLE_STEPS)
REGISTRY: dict[str, StepSpec] = {s.name: s for s in
                                 TRAINING_STEPS + SERVING_STEPS + (MONITOR_STEP, VERIFY_STEP) + LIFECYCLE_STEPS}


def steps_of(kind: str, registration: bool = False, approval: bool = False, *,
             monitoring: bool = False) -> tuple[StepSpec, ...]:
    """The step graph of a pipeline of ``kind``: with ``monitoring`` a serving graph gets
    ``monitor`` before ``publish``; training with registration ends with ``promote`` (and
    ``apply_promotion`` when approval is required)."""
    steps = STEPS_BY_KIND[kind]
    if monitoring and kind == PipelineKind.SERVING:
        steps = steps[:-1] + (MONITOR_STEP,) + steps[-1:]
    if registration and kind == PipelineKind.TRAINING:
        steps = steps + ((PROMOTE_STEP, APPLY_PROMOTION_STEP) if approval else (PROMOTE_STEP,))
    return steps


def step_spec(name: str) -> StepSpec | None:
    """The registered spec of step ``name`` (``None`` when there is none)."""
    return REGISTRY.get(name)


def dependencies(steps: tuple[StepSpec, ...]) -> dict[str, list[str]]:
    """step name -> names of the steps producing its inputs (in graph order)."""
    producer: dict[str, str] = {}
    for s in steps:
        for out in s.output_names:
            producer[out] = s.name
    names = [x.name for x in steps]
    return {s.name: sorted({producer[i] for i in s.inputs} | {g for g in GATES.get(s.name, ()) if g in names},
                           key=names.index)
            for s in steps}
