"""``serving.monitoring`` in YAML: validation with positions, defaults, the monitor step in the
manifest only when configured (manifests without it keep their steps and hash)."""

from __future__ import annotations

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.pipeline.compiler import compile_pipeline
from airflow_mbt.project.profiles import resolve_target
from airflow_mbt.project.root import Project
from airflow_mbt.scaffold.project_init import init_project
from airflow_mbt.step_specs import SERVING_STEPS

SERVE = "serving_churn_model_v1"


@pytest.fixture()
def proj(tmp_path) -> Project:
    root = init_project("demo", tmp_path)
    serving = root / "pipelines" / f"{SERVE}.yaml"
    serving.write_text(serving.read_text().replace("<run_id_from_mlflow>", "0123456789abcdef0123456789abcdef"))
    return Project(root)


def with_monitoring(proj: Project, block: str):
    path = proj.root / "pipelines" / f"{SERVE}.yaml"
    path.write_text(path.read_text() + block)
    return compile_pipeline(proj, SERVE, resolve_target(proj, None, env={}), None, {})


def test_without_monitoring_nothing_changes(proj):
    m = compile_pipeline(proj, SERVE, resolve_target(proj, None, env={}), None, {})
    assert [s.name for s in m.steps] == [s.name for s in SERVING_STEPS]
    assert m.step("publish").depends_on == ("load_model", "predict") and "monitoring" not in m.config["serving"]


def test_monitoring_adds_the_gating_step_with_defaults(proj):
    m = with_monitoring(proj, "  monitoring:\n    on_breach: fail\n")
    assert [s.name for s in m.steps] == ["load_model", "load_scoring_data", "apply_transforms", "predict",
                                         "monitor", "publish"]
    assert m.step("monitor").depends_on == ("load_model", "load_scoring_data", "predict")
    assert m.step("publish").depends_on == ("load_model", "predict", "monitor")
    assert m.config["serving"]["monitoring"] == {"max_psi": 0.25, "on_breach": "fail", "table": "model_monitoring"}
    assert m.position("serving.monitoring.on_breach") is not None


@pytest.mark.parametrize("block, field, needle", [
    ("  monitoring:\n    on_breach: stop\n", "serving.monitoring.on_breach", "warn"),
    ("  monitoring:\n    max_psi: -1\n", "serving.monitoring.max_psi", "0"),
    ("  monitoring:\n    max_psi: 0.2\n    table: \"x; drop table y\"\n", "serving.monitoring.table", ""),
    ("  monitoring:\n    max_psl: 0.2\n", "serving.monitoring", "max_psl"),
])
def test_bad_monitoring_is_an_input_error_at_its_line(proj, block, field, needle):
    with pytest.raises(MBTInputError) as err:
        with_monitoring(proj, block)
    e = err.value
    assert e.file and e.file.endswith(f"{SERVE}.yaml") and e.line is not None and e.col is not None
    assert (e.field or "").startswith(field) and needle in str(e)


def test_an_empty_monitoring_section_means_the_defaults(proj):
    m = with_monitoring(proj, "  monitoring: {}\n")
    assert "monitor" in [s.name for s in m.steps]
    assert m.config["serving"]["monitoring"] == {"max_psi": 0.25, "on_breach": "warn", "table": "model_monitoring"}
