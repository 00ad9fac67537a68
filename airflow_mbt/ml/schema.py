"""The label/id schema of a pipeline (``training.schema`` + ``project.problem_type``) and the
mapping of raw label values onto the classes declared in the YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mbt.errors import DataContractError, MBTInputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")


@dataclass
class PipelineSchema:
    problem_type: str
    label_column: str
    primary_key: str | None
    ignored_columns: list[str] = field(default_factory=list)
    classes: list[Any] | None = None
    positive_class: Any = None

    @property
    def is_classification(self) -> bool:
        return self.problem_type != "regression"

    @classmethod
    def from_config(cls, config: dict) -> "PipelineSchema":
        project = config.get("project") or {}
        problem_type = project.get("problem_type")
        if problem_type not in PROBLEM_TYPES:
            raise MBTInputError(f"unknown problem_type {problem_type!r}", field="project.problem_type",
                                hint=f"use one of: {', '.join(PROBLEM_TYPES)}")
        schema = (config.get("training") or {}).get("schema") or {}
        target = schema.get("target") or {}
        label = target.get("label_column")
        if not label:
            raise MBTInputError("label_column is required", field="training.schema.target.label_column")
        classes = target.get("classes")
        positive = target.get("positive_class")
        if problem_type == "regression":
            classes, positive = None, None
        elif classes is not None and positive is None and problem_type == "binary_classification":
            positive = classes[-1]
        return cls(problem_type=problem_type, label_column=label,
                   primary_key=(schema.get("identifiers") or {}).get("primary_key"),
                   ignored_columns=list(schema.get("ignored_columns") or []),
                   classes=list(classes) if classes is not None else None, positive_class=positive)

    def resolve_classes(self, y: "pd.Series") -> list[Any]:
        """The declared classes, or the sorted distinct labels when the YAML declares none."""
        if self.classes is not None:
            return list(self.classes)
        values = sorted({_plain(v) for v in y.dropna().unique()}, key=lambda v: (str(type(v)), v))
        if self.problem_type == "binary_classification" and len(values) != 2:
            raise DataContractError(f"binary classification needs exactly 2 label values, found {len(values)}",
                                    field=f"label column {self.label_column!r}",
                                    hint="declare training.schema.target.classes or fix problem_type")
        return values


def _plain(v: Any) -> Any:
    """numpy scalar -> Python scalar (JSON-serializable)."""
    return v.item() if hasattr(v, "item") else v


def _class_key(v: Any) -> str:
    v = _plain(v)
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    text = str(v).strip().lower()
    return {"true": "1", "false": "0"}.get(text, text)


def match_class(value: Any, classes: list[Any]) -> Any:
    """The declared class equal to ``value`` (``True``/``1``/``1.0``/``"1"`` are one class);
    ``KeyError`` when none matches."""
    key = _class_key(value)
    for c in classes:
        if _class_key(c) == key:
            return c
    raise KeyError(value)


def normalize_labels(y: "pd.Series", classes: list[Any], label_column: str) -> "pd.Series":
    """Map raw label values (bool/str/float from a database or CSV) onto the declared classes.

    Missing labels and values not among ``classes`` raise one ``DataContractError``."""

    if y.isna().any():
        raise DataContractError(f"{int(y.isna().sum())} rows have no label", field=f"label column {label_column!r}",
                                hint="filter unlabeled rows in the label table")
    mapping, unknown = {}, []
    for v in y.unique():
        try:
            mapping[v] = match_class(v, classes)
        except KeyError:
            unknown.append(_plain(v))
    if unknown:
        raise DataContractError(f"label values {unknown[:10]} are not among the declared classes {classes}",
                                field=f"label column {label_column!r}",
                                hint="fix training.schema.target.classes")
    return _mapped(y, mapping)


def map_classes(values: "pd.Series", classes: list[Any]) -> "pd.Series":
    """``values`` (model predictions) mapped onto the declared classes with :func:`match_class`,
    one lookup per distinct value (``KeyError`` for a value no class matches)."""
    return _mapped(values, {v: match_class(v, classes) for v in values.unique()})


def _mapped(values: "pd.Series", mapping: dict[Any, Any]) -> "pd.Series":
    """``values`` through ``mapping`` (vectorised: a per-row Python loop cost ~1 s per 1M rows),
    as an object column with the classes' own types, then their inferred dtype."""
    import numpy as np
    import pandas as pd

    keys = list(mapping)
    raw = values.to_numpy()
    codes = pd.Index(keys).get_indexer(raw) if keys else np.full(len(values), -1)
    if (codes < 0).any():  # keys of mixed types: compare as objects
        codes = pd.Index(keys, dtype=object).get_indexer(raw.astype(object))
    if (codes < 0).any():  # unreachable: every distinct value has a key
        raise KeyError(values[codes < 0].iloc[0])
    return take_classes([mapping[k] for k in keys], codes, values.index, values.name)


def take_classes(classes: list[Any], codes: Any, index: Any, name: Any = None) -> "pd.Series":
    """``classes[codes[i]]`` for every row, as a column of the classes' own dtype (inferred on the
    few classes, not on every row)."""
    import numpy as np
    import pandas as pd

    targets = np.empty(len(classes), dtype=object)
    targets[:] = classes
    typed = pd.Series(targets, dtype=object).infer_objects().to_numpy()
    return pd.Series(typed[codes], index=index, name=name)


def regression_labels(y: "pd.Series", label_column: str) -> "pd.Series":
    """Numeric regression targets; rows without a number raise one ``DataContractError``."""
    import pandas as pd

    values = pd.to_numeric(y, errors="coerce").astype("float64")
    if values.isna().any():
        raise DataContractError(f"{int(values.isna().sum())} rows have no numeric label",
                                field=f"label column {label_column!r}",
                                hint="filter rows without a label (or with text in it) from the label table")
    return values
