"""Airflow hooks for the services airflow-mbt talks to that have no official provider: H2O and
MLflow. Connection types ``h2o`` and ``mlflow`` are declared in ``airflow_mbt.provider_info``."""
