"""The ``h2o_automl`` framework: H2O AutoML on a cluster, the leader saved as a MOJO.

Cluster (target ``h2o`` section):

* ``url`` or ``conn_id`` (``H2OHook``): connect to an existing cluster (prod; the shared server).
* otherwise (``mode: local``): a private JVM on ``127.0.0.1:<port>`` (default 54331, never the
  shared server's 54321) with a bounded heap (``max_mem_size``, default ``2g``); if an H2O of the
  same version already answers there it is reused and left running.

Training writes the features + label to a CSV file (pyarrow's multi-threaded writer) that the
cluster parses in parallel (``h2o.upload_file``; classification labels as a factor), runs
``H2OAutoML`` with the config keys (``max_runtime_secs``, ``max_models``, ``sort_metric``,
``seed``, ``nfolds``, ``exclude_algos``, ...) and saves the leader with ``download_mojo``.
Prediction needs no cluster: one long-lived JVM per loaded MOJO (``h2o_scorer.MojoScorer``, the
genmodel classes of the installed package's ``h2o.jar``), so serving works in any process.
``cleanup()`` removes from the cluster every key this framework instance created (frames, AutoML
project, leaderboard models and their CV artifacts), stops the scorers it started and shuts down
only a JVM it started itself. What h2o prints goes to the ``airflow_mbt.h2o`` logger at DEBUG
(``h2o_output``; shown with ``mbt -v``).
"""

from __future__ import annotations

import atexit
import inspect
import json
import logging
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mbt.errors import InfraError, MBTInputError
from airflow_mbt.plugins.base import Framework
from airflow_mbt.plugins.frameworks.h2o_output import chatty, h2o_output
from airflow_mbt.plugins.frameworks.h2o_scorer import MojoScorer

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("airflow_mbt")

FIELD = "training.model_training.config"
SHARED_PORT = 54321
DEFAULT_PORT = 54331
DEFAULT_MEM = "2g"
MOJO_FILE = "model.zip"
INFO_FILE = "h2o_model.json"
LABEL = "__mbt_label__"
PROBE_TIMEOUT = 10
STARTUP_WAIT = 30
_COMMON_SORT = ("AUTO", "deviance", "MSE", "RMSE")
SORT_METRICS = {
    "binary_classification": _COMMON_SORT + ("AUC", "AUCPR", "logloss", "mean_per_class_error"),
    "multiclass_classification": _COMMON_SORT + ("logloss", "mean_per_class_error"),
    "regression": _COMMON_SORT + ("MAE", "RMSLE"),
}
AUTOML_ID = re.compile(r"AutoML_\d+_\d+_\d+")


@dataclass
class H2OTrained:
    """What ``train`` returns: the AutoML run and its leader, still on the cluster."""

    automl: Any
    leader: Any
    feature_columns: list[str]
    problem_type: str
    model_ids: list[str] = field(default_factory=list)
    response_levels: list[str] = field(default_factory=list)


@dataclass
class H2OMojo:
    """What ``load`` returns: a MOJO file and the saved training info (no cluster needed)."""

    path: Path
    info: dict
    scorer: MojoScorer | None = field(default=None, repr=False, compare=False)


def genmodel_jar() -> Path:
    """The h2o.jar shipped inside the h2o package (it contains the MOJO scoring classes)."""
    import h2o

    return Path(h2o.__file__).parent / "backend" / "bin" / "h2o.jar"


def _reachable(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/3/Cloud", timeout=PROBE_TIMEOUT) as resp:
            resp.read(64)
        return True
    except urllib.error.HTTPError:  # it answered (auth required, ...): a server is there
        return True
    except OSError:
        return False


def _wait_reachable(url: str, seconds: float) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _reachable(url):
            return True
        time.sleep(1)
    return False


def _attach(h2o, url: str, port: int) -> None:
    """Connect to an H2O someone else started on the local port (left running at cleanup)."""
    try:
        h2o.connect(url=url, verbose=chatty())
    except Exception as exc:  # noqa: BLE001 - another program or another H2O version
        raise InfraError("H2O", f"port {port} is taken by something that is not a usable H2O "
                                f"({type(exc).__name__})", hint="set h2o.port to a free port") from None
    log.info("using the H2O already running on %s", url)


def _close_session_quietly() -> None:
    """End the h2o client's session (if still open) with its output captured."""
    import h2o

    with h2o_output():
        conn = h2o.connection()
        if conn is not None and conn.connected:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - the server may be gone at exit
                pass


def _h2o_error(exc: Exception, url: str | None) -> Exception:
    """An H2O client/server failure as an mbt error: settings the server rejects are input errors,
    everything else (connection lost, server failure) is a retryable ``InfraError``."""
    text = " ".join(str(exc).split())[:300]
    if "illegal argument" in text.lower():
        return MBTInputError(f"H2O rejected the AutoML settings: {text}", field=FIELD)
    return InfraError("H2O", f"{url}: {type(exc).__name__}: {text}")


def to_pandas(frame) -> "pd.DataFrame":
    """An H2OFrame as pandas (without the polars advice warning h2o prints every time)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return frame.as_data_frame()


def automl_options(config: dict, problem_type: str | None = None) -> dict:
    """Validate ``model_training.config`` against ``H2OAutoML``'s parameters and, when
    ``problem_type`` is given, ``sort_metric`` against it (AUC on a multiclass problem becomes
    ``mean_per_class_error``)."""
    from h2o.automl import H2OAutoML

    valid = [p for p in inspect.signature(H2OAutoML.__init__).parameters if p not in ("self", "kwargs")]
    options = dict(config or {})
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise MBTInputError(f"H2OAutoML has no option {', '.join(map(repr, unknown))}", field=f"{FIELD}.{unknown[0]}",
                            hint=f"valid options: {', '.join(valid)}")
    for key in ("max_runtime_secs", "max_models", "nfolds", "seed"):
        if key in options and (isinstance(options[key], bool) or not isinstance(options[key], int)):
            raise MBTInputError(f"{key} must be an integer, got {options[key]!r}", field=f"{FIELD}.{key}")
    metric = str(options.get("sort_metric", "AUTO"))
    allowed = SORT_METRICS.get(problem_type or "", ())
    if allowed and metric.upper() not in {m.upper() for m in allowed}:
        if problem_type == "multiclass_classification" and metric.upper() in ("AUC", "AUCPR"):
            log.warning("sort_metric %s does not rank multiclass models: using mean_per_class_error", metric)
            options["sort_metric"] = "mean_per_class_error"
        else:
            raise MBTInputError(f"sort_metric {metric!r} does not apply to {problem_type}",
                                field=f"{FIELD}.sort_metric",
                                hint=f"use one of: {', '.join(allowed)}")
    return options


class H2OAutoMLFramework(Framework):
    name = "h2o_automl"
    predict_batch_rows = 0  # any chunk size: the MOJO scorer JVM lives across chunks

    def __init__(self, runtime):
        super().__init__(runtime)
        self._started = False
        self._connected_url: str | None = None
        self._frames: list[str] = []
        self._projects: list[str] = []
        self._models: list[str] = []
        self._scorers: list[MojoScorer] = []

    # ---- cluster ---------------------------------------------------------------------------
    def _settings(self) -> dict:
        return self.runtime.section("h2o") if self.runtime is not None else {}

    def connect(self) -> str:
        """Attach the h2o client to the target's cluster (starting a private JVM in local mode);
        returns the cluster URL."""
        if self._connected_url:
            return self._connected_url
        with h2o_output():
            return self._connect()

    def _connect(self) -> str:
        import h2o

        verbose = chatty()
        sec = self._settings()
        if sec.get("conn_id") or sec.get("url"):
            if sec.get("conn_id"):
                from airflow_mbt.hooks.h2o import H2OHook

                kwargs = H2OHook(sec["conn_id"]).connect_kwargs()
            else:
                kwargs = {"url": str(sec["url"]).rstrip("/")}
            kwargs["verbose"] = verbose
            url = kwargs["url"]
            if not _reachable(url):
                raise InfraError("H2O", f"no H2O cluster answers at {url}",
                                 hint="check the target's h2o section / the mbt_h2o connection")
            try:
                h2o.connect(**kwargs)
            except Exception as exc:  # noqa: BLE001 - version mismatch, auth, ...
                raise InfraError("H2O", f"cannot attach to {url}: {type(exc).__name__}: {str(exc)[:200]}") from None
        elif sec.get("mode") == "remote":
            raise MBTInputError("h2o mode 'remote' needs a cluster address", field="h2o.url",
                                hint="set h2o.url (http://host:54321) or h2o.conn_id (an Airflow h2o connection)")
        else:
            port = int(sec.get("port", DEFAULT_PORT))
            if port == SHARED_PORT:
                raise MBTInputError(f"port {SHARED_PORT} belongs to the shared H2O server", field="h2o.port",
                                    hint=f"use url: http://127.0.0.1:{SHARED_PORT} to train there, or another port "
                                         f"(default {DEFAULT_PORT}) for a private JVM")
            heap = str(sec.get("max_mem_size", DEFAULT_MEM))
            if not re.fullmatch(r"\d+[mMgGtT]", heap):
                raise MBTInputError(f"max_mem_size {heap!r} is not a heap size H2O accepts", field="h2o.max_mem_size",
                                    hint="a number with m, g or t, e.g. 2g")
            url = f"http://127.0.0.1:{port}"
            if _reachable(url):
                _attach(h2o, url, port)
            else:
                try:
                    h2o.init(ip="127.0.0.1", port=port, max_mem_size=heap,
                             name=str(sec.get("name") or f"mbt_{uuid.uuid4().hex[:8]}"),
                             nthreads=int(sec.get("nthreads", -1)), as_port=True, verbose=verbose,
                             strict_version_check=True)
                except Exception as exc:  # noqa: BLE001 - java missing, port busy, ...
                    # another process may have started a JVM on this port at the same moment
                    if not _wait_reachable(url, STARTUP_WAIT):
                        raise InfraError("H2O", f"could not start a local H2O JVM on {url}: "
                                                f"{type(exc).__name__}: {str(exc)[:200]}") from None
                    _attach(h2o, url, port)
                else:
                    self._started = True
                    log.info("started a local H2O JVM on %s (heap %s)", url, heap)
        if verbose:
            h2o.show_progress()
        else:
            h2o.no_progress()
            # runs before h2o's own exit hook (atexit is LIFO), which would print "Closing connection"
            atexit.unregister(_close_session_quietly)
            atexit.register(_close_session_quietly)
        self._connected_url = url
        return url

    # ---- training --------------------------------------------------------------------------
    def train(self, X: "pd.DataFrame", y: "pd.Series", problem_type: str, config: dict, ctx) -> H2OTrained:
        options = automl_options(config, problem_type)
        self.connect()
        with h2o_output():
            return self._train(X, y, problem_type, options, ctx)

    def _train(self, X: "pd.DataFrame", y: "pd.Series", problem_type: str, options: dict, ctx) -> H2OTrained:
        from h2o.automl import H2OAutoML
        from h2o.exceptions import H2OError

        run = re.sub(r"[^A-Za-z0-9_]", "_", getattr(ctx, "run_id", "run"))
        project = str(options.pop("project_name", None) or f"mbt_{run}_{uuid.uuid4().hex[:6]}")
        classification = problem_type != "regression"
        try:
            train_frame = self._upload(X, y, classification, f"{project}_train")
            automl = H2OAutoML(project_name=project, **options)
            self._projects.append(project)
            automl.train(x=list(X.columns), y=LABEL, training_frame=train_frame)
        except H2OError as exc:
            raise _h2o_error(exc, self._connected_url) from None
        board = to_pandas(automl.leaderboard) if automl.leaderboard is not None else None
        model_ids = [str(m) for m in board["model_id"]] if board is not None and len(board) else []
        self._models.extend(model_ids)
        self._models.extend(sorted({m.group(0) for mid in model_ids for m in [AUTOML_ID.search(mid)] if m}))
        if automl.leader is None:
            raise MBTInputError("H2O AutoML finished without training any model", field=f"{FIELD}.max_runtime_secs",
                                hint="give AutoML more time (max_runtime_secs) or more models (max_models)")
        log.info("H2O AutoML %s: %d models, leader %s", project, len(model_ids), automl.leader.model_id)
        levels = train_frame.levels()[-1] if classification else []
        return H2OTrained(automl=automl, leader=automl.leader, feature_columns=list(X.columns),
                          problem_type=problem_type, model_ids=model_ids, response_levels=[str(v) for v in levels])

    def _upload(self, X: "pd.DataFrame", y: "pd.Series", classification: bool, key: str):
        """Features + label as an H2OFrame (the label a factor for classification): a CSV file
        written by pyarrow, sent with ``upload_file`` and parsed by the cluster in parallel
        (``H2OFrame(pandas)`` formats every value in Python, single-threaded)."""
        import tempfile

        import h2o
        import pyarrow as pa
        import pyarrow.csv as pacsv

        frame = X.reset_index(drop=True)
        label = y.astype(str).to_numpy() if classification else y.astype("float64").to_numpy()
        table = pa.Table.from_pandas(frame, preserve_index=False).append_column(LABEL, pa.array(label))
        types = {c: ("enum" if frame[c].dtype == object else "real") for c in X.columns}
        types[LABEL] = "enum" if classification else "real"
        with tempfile.TemporaryDirectory(prefix="mbt-h2o-") as tmp:
            path = Path(tmp) / f"{key}.csv"
            pacsv.write_csv(table, path)
            del table
            train_frame = h2o.upload_file(str(path), destination_frame=key, header=1,
                                          col_names=list(X.columns) + [LABEL],
                                          col_types=[types[c] for c in list(X.columns) + [LABEL]])
        self._frames.append(train_frame.frame_id)
        if classification and train_frame.types.get(LABEL) != "enum":
            train_frame[LABEL] = train_frame[LABEL].asfactor()
        return train_frame

    # ---- persistence -----------------------------------------------------------------------
    def save(self, model: H2OTrained, directory: Path) -> None:
        with h2o_output():
            self._save(model, directory)

    def _save(self, model: H2OTrained, directory: Path) -> None:
        import h2o

        directory.mkdir(parents=True, exist_ok=True)
        written = Path(model.leader.download_mojo(path=str(directory), get_genmodel_jar=False))
        if written.name != MOJO_FILE:
            shutil.move(str(written), directory / MOJO_FILE)
        board = to_pandas(model.automl.leaderboard).head(20)
        info = {"file": MOJO_FILE, "leader": model.leader.model_id, "algo": model.leader.algo,
                "h2o_version": h2o.__version__, "label": LABEL, "response_levels": model.response_levels,
                "feature_columns": model.feature_columns,
                "leaderboard": json.loads(board.to_json(orient="records")),
                "feature_importance": self.feature_importance(model)}
        (directory / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")

    def load(self, directory: Path) -> H2OMojo:
        directory = Path(directory)
        path = directory / MOJO_FILE
        if not path.exists():
            raise MBTInputError(f"{path} not found", hint="the model directory was not written by h2o_automl")
        info = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
        return H2OMojo(path=path, info=info)

    # ---- scoring ---------------------------------------------------------------------------
    def predict(self, model: H2OMojo, X: "pd.DataFrame", problem_type: str) -> "pd.DataFrame":
        import numpy as np
        import pandas as pd

        from airflow_mbt.constants import proba_column

        if not isinstance(model, H2OMojo):
            raise TypeError("h2o_automl predicts from a loaded MOJO (framework.load(directory))")
        if model.scorer is None or not model.scorer.alive:  # one JVM per loaded MOJO, reused
            model.scorer = MojoScorer(model.path)
            self._scorers.append(model.scorer)
        raw = model.scorer.score(X)
        out = pd.DataFrame(index=X.index)
        if problem_type == "regression":
            out["prediction"] = raw[:, 0]
            return out
        levels = model.scorer.header.levels or [str(v) for v in model.info.get("response_levels") or []]
        if raw.shape[1] < len(levels) + 1:
            raise InfraError("H2O", f"MOJO {model.path.name} returned {raw.shape[1]} values per row for "
                                    f"{len(levels)} classes")
        out["prediction"] = np.asarray(levels, dtype=object)[raw[:, 0].astype(np.int64)]
        for i, level in enumerate(levels):  # score0: [label index, p(level 0), p(level 1), ...]
            out[proba_column(level)] = raw[:, i + 1]
        return out

    def feature_importance(self, model: Any) -> dict[str, float]:
        if isinstance(model, H2OMojo):
            return dict(model.info.get("feature_importance") or {})
        with h2o_output():
            return self._feature_importance(model)

    def _feature_importance(self, model: H2OTrained) -> dict[str, float]:
        import h2o

        candidates = [model.leader] + [h2o.get_model(mid) for mid in model.model_ids[1:6]]
        for candidate in candidates:
            try:
                table = candidate.varimp(use_pandas=True)
            except Exception:  # noqa: BLE001 - stacked ensembles have no varimp
                table = None
            if table is not None and len(table):
                return {str(r["variable"]): float(r["scaled_importance"]) for _, r in table.iterrows()}
        return {}

    # ---- cleanup ---------------------------------------------------------------------------
    def created_keys(self) -> list[str]:
        """Keys on the cluster that this instance created (frames, AutoML, models, CV outputs)."""
        import h2o

        markers = self._frames + self._projects + self._models
        if not markers:
            return []
        session = getattr(h2o.connection(), "session_id", None)
        if session:
            markers = markers + [str(session)]
        keys = [str(k) for k in h2o.ls()["key"]]
        return [k for k in keys if any(m in k for m in markers)]

    def cleanup(self) -> None:
        """Stop the MOJO scorers; remove this run's keys from the cluster; shut down the JVM only
        if we started it."""
        for scorer in self._scorers:
            scorer.close()
        self._scorers = []
        if not self._connected_url:
            return
        with h2o_output():
            self._cleanup()

    def _cleanup(self) -> None:
        import h2o

        try:
            for project in self._projects:
                try:
                    h2o.remove(project, cascade=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
            for key in self.created_keys():
                try:
                    h2o.remove(key, cascade=True)
                except Exception:  # noqa: BLE001 - removed with its parent
                    pass
            left = self.created_keys()
            if left:
                log.warning("H2O keys left after cleanup: %s", ", ".join(left[:10]))
        finally:
            if self._started:
                try:
                    h2o.cluster().shutdown()
                except Exception:  # noqa: BLE001 - the JVM may already be gone
                    log.warning("H2O shutdown failed", exc_info=True)
                self._started = False
            else:  # end our session now, not in h2o's exit hook (which prints "Closing connection")
                _close_session_quietly()
            self._frames, self._projects, self._models = [], [], []
            self._connected_url = None
