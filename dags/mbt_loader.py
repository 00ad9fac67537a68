"""Airflow DAG file: builds one DAG per published airflow-mbt manifest (see airflow_mbt.dag_factory).

Where manifests are read from: [mbt] manifests_uri (env MBT_MANIFESTS_URI), an s3:// prefix read
through the [mbt] manifests_conn_id connection, or a local folder such as a project's target/.
"""

from airflow_mbt.dag_factory import register

register(globals())
