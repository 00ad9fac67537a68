"""h2o_automl configuration checks that need no JVM: AutoML options, the shared port, an
unreachable cluster."""

import pytest
from ml_pipeline_fixtures import dev_target

from airflow_mbt.errors import InfraError, MBTInputError
from airflow_mbt.plugins import registry
from airflow_mbt.plugins.frameworks.h2o_automl import H2OAutoMLFramework, automl_options, genmodel_jar
from airflow_mbt.runtime.context import TargetRuntime


def test_registered_and_genmodel_jar_ships_with_the_package():
    assert registry.get("frameworks", "h2o_automl") is H2OAutoMLFramework
    assert genmodel_jar().is_file()


def test_known_options_pass_unknown_ones_are_named():
    opts = {"max_runtime_secs": 30, "max_models": 5, "sort_metric": "AUC", "seed": 1, "nfolds": 3,
            "exclude_algos": ["DeepLearning"]}
    assert automl_options(opts) == opts
    with pytest.raises(MBTInputError) as err:
        automl_options({"max_runtime": 30})
    assert err.value.field == "training.model_training.config.max_runtime" and "max_runtime_secs" in err.value.hint
    with pytest.raises(MBTInputError) as err:
        automl_options({"max_models": "ten"})
    assert err.value.field == "training.model_training.config.max_models"


def test_local_mode_refuses_the_shared_servers_port(tmp_path):
    target = dev_target(h2o={"mode": "local", "port": 54321})
    fw = H2OAutoMLFramework(TargetRuntime(target=target, project_dir=tmp_path))
    with pytest.raises(MBTInputError) as err:
        fw.connect()
    assert err.value.field == "h2o.port" and "shared" in str(err.value)


def test_unreachable_cluster_is_an_infra_error_naming_the_url(tmp_path):
    fw = H2OAutoMLFramework(TargetRuntime(target=dev_target(h2o={"url": "http://127.0.0.1:9"}), project_dir=tmp_path))
    with pytest.raises(InfraError) as err:
        fw.connect()
    assert err.value.service == "H2O" and "http://127.0.0.1:9" in str(err.value)
    fw.cleanup()  # nothing was created: a no-op


def test_sort_metric_must_fit_the_problem_type():
    assert automl_options({"sort_metric": "AUC"}, "binary_classification") == {"sort_metric": "AUC"}
    multiclass = automl_options({"sort_metric": "AUC"}, "multiclass_classification")
    assert multiclass == {"sort_metric": "mean_per_class_error"}
    assert automl_options({"sort_metric": "rmse"}, "regression") == {"sort_metric": "rmse"}
    with pytest.raises(MBTInputError) as err:
        automl_options({"sort_metric": "AUC"}, "regression")
    assert err.value.field == "training.model_training.config.sort_metric" and "RMSE" in err.value.hint


def test_h2o_failures_map_to_input_or_infra_errors():
    from h2o.exceptions import H2OConnectionError, H2OResponseError

    from airflow_mbt.plugins.frameworks.h2o_automl import _h2o_error

    bad = _h2o_error(H2OResponseError("ERROR MESSAGE: Illegal argument: sort_metric for AutoML"), "http://h:1")
    assert isinstance(bad, MBTInputError) and bad.field == "training.model_training.config"
    lost = _h2o_error(H2OConnectionError("Connection reset by peer"), "http://h:1")
    assert isinstance(lost, InfraError) and lost.retryable and "http://h:1" in str(lost)


def test_remote_mode_without_an_address_is_an_input_error(tmp_path):
    fw = H2OAutoMLFramework(TargetRuntime(target=dev_target(h2o={"mode": "remote"}), project_dir=tmp_path))
    with pytest.raises(MBTInputError) as err:
        fw.connect()
    assert err.value.field == "h2o.url" and "conn_id" in err.value.hint


def test_heap_size_must_be_one_h2o_accepts(tmp_path):
    target = dev_target(h2o={"mode": "local", "port": 54399, "max_mem_size": "512k"})
    with pytest.raises(MBTInputError) as err:
        H2OAutoMLFramework(TargetRuntime(target=target, project_dir=tmp_path)).connect()
    assert err.value.field == "h2o.max_mem_size"
