"""Built-in model frameworks: ``sklearn`` and ``h2o_automl`` (entry points ``airflow_mbt.frameworks``)."""
