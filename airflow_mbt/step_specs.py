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

# Added after log_run when ``training.registration`` is configured (``training_steps``).
PROMOTE_STEP = _s("promote", ["mlflow_run", "metrics", "test_set"], [("promotion", JSON)],
                  "Re-score the champion on this test set, move the alias if the challenger wins")
# Added after promote with ``registration.approval: required``; Airflow runs it only once approved.
APPLY_PROMOTION_STEP = _s("apply_promotion", ["promotion"], [("promotion_applied", JSON)],
                          "Move the alias to the approved challenger")
APPROVAL_TASK = "approve_promotion"  # the Airflow ApprovalOperator between the two


def model_asset(model_name: str, alias: str) -> tuple[str, str]:
    """``(name, uri)`` of the Airflow asset standing for ``model_name@alias`` (no network)."""
    return f"mbt_model__{model_name}__{alias}", f"mlflow-model://{model_name}/{alias}"
MODEL_REF_STEP = "load_model"  # its ``model_ref`` output: the MLflow run/version a serving run uses

STEPS_BY_KIND: dict[str, tuple[StepSpec, ...]] = {PipelineKind.TRAINING: TRAINING_STEPS,
                                                  PipelineKind.SERVING: SERVING_STEPS}
LIFECYCLE_STEPS = (PROMOTE_STEP, APPLY_PROMOTION_STEP)
ALL_STEP_NAMES = tuple(s.name for s in TRAINING_STEPS + SERVING_STEPS + LIFECYCLE_STEPS)
REGISTRY: dict[str, StepSpec] = {s.name: s for s in TRAINING_STEPS + SERVING_STEPS + LIFECYCLE_STEPS}


def steps_of(kind: str, registration: bool = False, approval: bool = False) -> tuple[StepSpec, ...]:
    """The step graph of a pipeline of ``kind``; training with registration ends with ``promote``
    (and ``apply_promotion`` when approval is required)."""
    steps = STEPS_BY_KIND[kind]
    if not registration or kind != PipelineKind.TRAINING:
        return steps
    return steps + ((PROMOTE_STEP, APPLY_PROMOTION_STEP) if approval else (PROMOTE_STEP,))


def step_spec(name: str) -> StepSpec | None:
    """The registered spec of step ``name`` (``None`` when there is none)."""
    return REGISTRY.get(name)


def dependencies(steps: tuple[StepSpec, ...]) -> dict[str, list[str]]:
    """step name -> names of the steps producing its inputs (in graph order)."""
    producer: dict[str, str] = {}
    for s in steps:
        for out in s.output_names:
            producer[out] = s.name
    return {s.name: sorted({producer[i] for i in s.inputs}, key=[x.name for x in steps].index)
            for s in steps}
