"""The ownership rule of a shared Airflow (``[mbt] teams``): each team's folder may hold only its
own DAG ids (``<team>_...``) and pods in its own namespace; a refused manifest is an error of its
file and never hides the other teams' DAGs. Through the real loader (Airflow's DagBag)."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow_manifests import build_manifest, write_tree

from airflow_mbt import dag_factory
from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifests.ownership import Team, parse_teams, violation

LOADER = Path(__file__).resolve().parents[3] / "dags" / "mbt_loader.py"


def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(LOADER))


def test_parse_teams():
    assert parse_teams("") == []
    assert parse_teams(" growth=ml-growth, risk ,") == [Team("growth", "ml-growth"), Team("risk", "risk")]
    for bad in ("Growth", "gro_wth", "growth=ML", "growth=", "a, a"):
        if bad == "growth=":
            assert parse_teams(bad) == [Team("growth", "growth")]
            continue
        with pytest.raises(MBTInputError) as err:
            parse_teams(bad)
        assert err.value.field == "[mbt] teams"


def test_violation_names_the_rule():
    growth = Team("growth", "ml-growth")
    assert violation(growth, build_manifest("growth_training_churn")) is None
    assert "must be named growth_<name>" in violation(growth, build_manifest("risk_training_churn"))
    pods = build_manifest("growth_serving_churn", "serving", executor="kubernetes")  # namespace mbt-pipelines
    assert "namespace 'mbt-pipelines'" in violation(growth, pods) and "'ml-growth'" in violation(growth, pods)
    assert violation(Team("growth", "mbt-pipelines"), pods) is None


@pytest.fixture
def teams_root(tmp_path, monkeypatch):
    root = tmp_path / "manifests"
    write_tree(root / "growth", [build_manifest("growth_training_churn"),
                                 build_manifest("risk_serving_fraud", "serving"),  # squatting risk's DAG id
                                 build_manifest("growth_serving_churn", "serving", executor="kubernetes")])
    write_tree(root / "risk", [build_manifest("risk_serving_fraud", "serving")])
    write_tree(root / "intruder", [build_manifest("intruder_training_x")])  # not a listed team: never read
    monkeypatch.setenv("MBT_MANIFESTS_URI", str(root) + "/")
    monkeypatch.setenv("MBT_TEAMS", "growth=mbt-pipelines, risk")
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    return root


def test_loader_builds_only_owned_manifests(teams_root):
    bag = _dagbag()
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["growth_serving_churn", "growth_training_churn", "risk_serving_fraud"]
    # risk's DAG comes from risk's folder, not from the copy growth published
    assert dag_factory.LAST_PARSE["errors"].keys() == {str(teams_root / "growth/risk_serving_fraud/manifest.json")}
    (why,) = dag_factory.LAST_PARSE["errors"].values()
    assert "ownership rule" in why and "team 'growth'" in why


def test_namespace_is_part_of_the_rule(teams_root, monkeypatch):
    monkeypatch.setenv("MBT_TEAMS", "growth=ml-growth, risk")
    bag = _dagbag()
    assert "growth_serving_churn" not in bag.dags and "growth_training_churn" in bag.dags
    assert any("namespace 'mbt-pipelines'" in why for why in dag_factory.LAST_PARSE["errors"].values())


def test_task_time_parse_reads_only_the_owner_folder(teams_root, monkeypatch):
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "risk_serving_fraud")
    bag = _dagbag()
    assert sorted(bag.dags) == ["risk_serving_fraud"] and dag_factory.LAST_PARSE["errors"] == {}


def test_bad_teams_setting_builds_nothing_and_says_why(teams_root, monkeypatch):
    monkeypatch.setenv("MBT_TEAMS", "Growth")
    bag = _dagbag()
    assert bag.dags == {} and bag.import_errors == {}
    assert "is not TEAM or TEAM=NAMESPACE" in dag_factory.LAST_PARSE["errors"]["[mbt] teams"]
