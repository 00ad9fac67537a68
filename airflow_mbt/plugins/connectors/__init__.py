"""Data connector plugins (entry-point group ``airflow_mbt.data_connectors``)."""
