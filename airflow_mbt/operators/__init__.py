"""Airflow operators running manifest steps: in-process (``step.MBTStepOperator``) or in a
Kubernetes pod (``kubernetes.MBTKubernetesStepOperator``). Import the submodules directly; the
Kubernetes one pulls in the cncf-kubernetes provider."""
