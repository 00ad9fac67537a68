"""``ArtifactRegistry``: which artifacts a run has produced, where, and their sha256.

Stored at ``<pipeline>/<run_id>/.artifact_registry.json`` as ``{"run_id", "artifacts": {name: {"uri", "key",
"kind", "sha256", "size", "step"}}}``. Updates are compare-and-swap (``read_versioned`` ->
merge -> ``write_conditional``) retried with jitter, so steps of one run that finish at the same
time (in different pods) never lose each other's entries.
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

from airflow_mbt.errors import IntegrityError, MBTInputError, RegistryConflictError
from airflow_mbt.runtime.artifacts import canonical_json_bytes, run_prefix

log = logging.getLogger("airflow_mbt")

REGISTRY_NAME = ".artifact_registry.json"
MAX_ATTEMPTS = 50


class ArtifactNotFoundError(MBTInputError):
    """An input artifact was never recorded for this run (its producing step did not run)."""


def registry_key(run_id: str, pipeline: str | None = None) -> str:
    return f"{run_prefix(run_id, pipeline)}/{REGISTRY_NAME}"


class ArtifactRegistry:
    def __init__(self, storage: Any, run_id: str, *, pipeline: str | None = None, max_attempts: int = MAX_ATTEMPTS):
        self.storage = storage
        self.run_id = run_id
        self.pipeline = pipeline
        self.key = registry_key(run_id, pipeline)
        self.max_attempts = max_attempts
        self._artifacts: dict[str, dict[str, Any]] | None = None

    def _parse(self, data: bytes | None) -> dict[str, dict[str, Any]]:
        if data is None:
            return {}
        try:
            doc = json.loads(data.decode("utf-8"))
            artifacts = doc["artifacts"]
            if not isinstance(artifacts, dict):
                raise TypeError("artifacts is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"artifact registry {self.storage.uri(self.key)} is corrupt ({exc}); "
                                 f"re-run the pipeline with a new run id") from None
        return artifacts

    def load(self) -> dict[str, dict[str, Any]]:
        """Read the registry (``{}`` when the run has recorded nothing yet) and cache it."""
        data, _version = self.storage.read_versioned(self.key)
        self._artifacts = self._parse(data)
        return dict(self._artifacts)

    @property
    def artifacts(self) -> dict[str, dict[str, Any]]:
        if self._artifacts is None:
            self.load()
        return dict(self._artifacts or {})

    def lookup(self, name: str, producer: str | None = None) -> dict[str, Any]:
        """The entry of artifact ``name``; ``ArtifactNotFoundError`` naming the producing step."""
        entry = self.artifacts.get(name)
        if entry is None:
            by = f"; did step {producer!r} run?" if producer else ""
            raise ArtifactNotFoundError(
                f"artifact {name!r} not found for run {self.run_id}{by}",
                hint=(f"run step {producer!r} for run id {self.run_id} first" if producer else
                      f"recorded artifacts: {', '.join(sorted(self.artifacts)) or '(none)'}"))
        return entry

    def record(self, entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Merge ``entries`` into the stored registry in one conditional write; returns the
        merged artifacts. Retries on conflicts with randomized backoff."""
        for attempt in range(1, self.max_attempts + 1):
            data, version = self.storage.read_versioned(self.key)
            merged = self._parse(data)
            merged.update(entries)
            body = canonical_json_bytes({"run_id": self.run_id, "artifacts": merged})
            try:
                self.storage.write_conditional(self.key, body, version)
            except RegistryConflictError:
                delay = random.uniform(0, min(0.5, 0.005 * 2 ** min(attempt, 7)))
                log.debug("registry %s conflict (attempt %d), retrying in %.3fs", self.key, attempt, delay)
                time.sleep(delay)
                continue
            self._artifacts = merged
            return dict(merged)
        raise RegistryConflictError(f"could not update {self.storage.uri(self.key)} after "
                                    f"{self.max_attempts} attempts (too many concurrent writers)")
