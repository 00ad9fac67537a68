"""Evaluation plots as PNG files (matplotlib, Agg backend): ROC and precision-recall curves,
confusion matrix, feature importance, and predicted-vs-actual for regression."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mbt.ml.metrics import proba_column

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MAX_FEATURES = 20


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    return plt, fig, ax


def _save(plt, fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path.name


def write_all(directory: Path, problem_type: str, y_true: "pd.Series", pred: "pd.DataFrame", *,
              classes: list | None = None, positive_class: Any = None,
              importance: dict[str, float] | None = None) -> list[str]:
    """Write every plot that applies into ``directory``; returns the file names."""
    import numpy as np
    from sklearn import metrics as m

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if problem_type == "regression":
        plt, fig, ax = _figure()
        yt, yp = np.asarray(y_true, dtype=float), np.asarray(pred["prediction"], dtype=float)
        ax.scatter(yt, yp, s=6, alpha=0.5)
        lo, hi = float(min(yt.min(), yp.min())), float(max(yt.max(), yp.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--")
        ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
        written.append(_save(plt, fig, directory / "predicted_vs_actual.png"))
    else:
        labels = [str(c) for c in classes or []]
        yt = np.array([str(v) for v in y_true])
        yp = np.array([str(v) for v in pred["prediction"]])
        cm = m.confusion_matrix(yt, yp, labels=labels)
        plt, fig, ax = _figure()
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center")
        ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix")
        written.append(_save(plt, fig, directory / "confusion_matrix.png"))
        pos_col = proba_column(positive_class)
        if problem_type == "binary_classification" and pos_col in pred.columns and len(set(yt)) == 2:
            y_bin = (yt == str(positive_class)).astype(int)
            score = pred[pos_col].to_numpy(dtype=float)
            fpr, tpr, _ = m.roc_curve(y_bin, score)
            plt, fig, ax = _figure()
            ax.plot(fpr, tpr, label=f"AUC = {m.auc(fpr, tpr):.3f}")
            ax.plot([0, 1], [0, 1], color="grey", linestyle="--")
            ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
            ax.legend(loc="lower right")
            written.append(_save(plt, fig, directory / "roc_curve.png"))
            precision, recall, _ = m.precision_recall_curve(y_bin, score)
            plt, fig, ax = _figure()
            ax.plot(recall, precision, label=f"AP = {m.average_precision_score(y_bin, score):.3f}")
            ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve")
            ax.legend(loc="lower left")
            written.append(_save(plt, fig, directory / "pr_curve.png"))
    if importance:
        top = sorted(importance.items(), key=lambda kv: -abs(kv[1]))[:MAX_FEATURES][::-1]
        plt, fig, ax = _figure()
        ax.barh([k for k, _ in top], [v for _, v in top])
        ax.set(xlabel="importance", title="Feature importance")
        written.append(_save(plt, fig, directory / "feature_importance.png"))
    return written
