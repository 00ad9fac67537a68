"""Execution of compiled manifests: run ids, step execution, artifact store and registry, runners."""
