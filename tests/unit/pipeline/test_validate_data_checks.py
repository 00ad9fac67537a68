"""``mbt validate`` checks label values against ``classes`` on the sample data, empty labels, and
a serving run id against the tracking store when it answers (unreachable: a note)."""

from __future__ import annotations

import socket
import sqlite3


from airflow_mbt.cli.main import main

T = "training_churn_model_v1"
SERVING = """\
project: {name: serving_x}
deployment: {cadence: daily}
serving:
  model_source: {run_id: RUN}
  data_source: {scoring_table: customers_to_score}
  output: {destination: local_file}
"""


def set_labels(project, values):
    path = project / "sample_data" / "customers.csv"
    lines = path.read_text().splitlines()
    out = [lines[0]] + [line.rsplit(",", 1)[0] + "," + values[i % len(values)] for i, line in enumerate(lines[1:])]
    path.write_text("\n".join(out) + "\n")


def test_label_value_outside_classes_is_an_error_at_classes(project, capsys):
    set_labels(project, ["0", "1", "2"])
    assert main(["validate", T]) == 2
    err = capsys.readouterr().err
    assert "training.schema.target.classes" in err and "'2'" in err and "not in classes [0, 1]" in err


def test_empty_labels_are_an_error_unless_filtered(project, capsys):
    set_labels(project, ["0", "1", ""])
    assert main(["validate", T]) == 2
    err = capsys.readouterr().err
    assert "empty 'churned'" in err and 'training.filters: ["churned IS NOT NULL"]' in err
    path = project / "pipelines" / f"{T}.yaml"
    path.write_text(path.read_text().replace("training:", 'training:\n  filters: ["churned IS NOT NULL"]', 1))
    assert main(["validate", T]) == 0


def test_a_class_missing_from_the_sample_is_only_a_note(project, capsys):
    set_labels(project, ["0"])
    assert main(["validate", T]) == 0
    assert "note: classes 1 do not occur" in capsys.readouterr().err


def write_serving(project, run_id):
    (project / "pipelines" / "serving_x.yaml").write_text(SERVING.replace("RUN", run_id))


def test_run_id_is_checked_in_the_sqlite_store(project, capsys):
    db = project / "mlruns" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE runs (run_uuid TEXT, lifecycle_stage TEXT)")
    con.execute("INSERT INTO runs VALUES ('abc123', 'active'), ('gone456', 'deleted')")
    con.commit()
    con.close()
    write_serving(project, "abc123")
    assert main(["validate", "serving_x"]) == 0
    write_serving(project, "nope789")
    assert main(["validate", "serving_x"]) == 2
    assert "serving.model_source.run_id: MLflow run 'nope789' does not exist" in capsys.readouterr().err
    write_serving(project, "gone456")
    assert main(["validate", "serving_x"]) == 2
    assert "was deleted" in capsys.readouterr().err


def test_unreachable_tracking_server_is_a_note(project, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    profiles = project / "profiles.yaml"
    profiles.write_text(profiles.read_text().replace("sqlite:///mlruns/mlflow.db", f"http://127.0.0.1:{port}"))
    write_serving(project, "abc123")
    assert main(["validate", "serving_x"]) == 0
    assert "note: the model's run id was not checked" in capsys.readouterr().err
