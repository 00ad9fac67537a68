"""The ownership rule of an Airflow shared by several teams (``[mbt] teams``).

Contract. With ``[mbt] teams`` empty (the default) the loader reads one manifests location and
this module does nothing. With ``[mbt] teams = growth=ml-growth, risk`` the manifests location is
a root holding one folder per team, ``<manifests_uri><team>/<pipeline>/manifest.json``; each team's
CI can write only its own folder (bucket policy, see docs/operations.md "Trust boundaries"), and
the loader builds a DAG from a team's folder only when the manifest belongs to that team:

1. the pipeline name (the DAG id) starts with ``<team>_``, so no team can publish, replace or
   shadow another team's DAG id;
2. a kubernetes target runs its pods in the team's namespace (after ``=``; default: the team
   name), so no team runs pods beside another team's secrets;

Team names hold no ``_``, so the part of a DAG id before its first ``_`` names exactly one team:
two teams can never both own a DAG id.
A refused manifest is reported as a parse error naming the rule, the file and the team; the
other teams' DAGs load as usual. Pure: no I/O, no Airflow import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from airflow_mbt.constants import ExecutorType
from airflow_mbt.errors import MBTInputError
from airflow_mbt.manifest import Manifest

FIELD = "[mbt] teams"
_NAME = re.compile(r"[a-z][a-z0-9-]*")  # no '_': the DAG id prefix is unambiguous
_NAMESPACE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # a Kubernetes namespace (DNS-1123 label)


@dataclass(frozen=True)
class Team:
    name: str
    namespace: str

    @property
    def prefix(self) -> str:
        return f"{self.name}_"


def parse_teams(value: str) -> list[Team]:
    """``"growth=ml-growth, risk"`` -> teams in the given order; ``""`` -> no teams (rule off)."""
    teams: list[Team] = []
    for item in (part.strip() for part in (value or "").split(",")):
        if not item:
            continue
        name, _, namespace = (s.strip() for s in item.partition("="))
        namespace = namespace or name
        if not _NAME.fullmatch(name) or not _NAMESPACE.fullmatch(namespace):
            raise MBTInputError(f"{item!r} is not TEAM or TEAM=NAMESPACE", field=FIELD,
                                hint="team: lowercase letters, digits, '-'; namespace: a Kubernetes namespace name, "
                                     "e.g. growth=ml-growth, risk")
        if any(t.name == name for t in teams):
            raise MBTInputError(f"team {name!r} is listed twice", field=FIELD)
        teams.append(Team(name, namespace))
    return teams


def violation(team: Team, manifest: Manifest) -> str | None:
    """Why ``manifest`` (found in ``team``'s folder) does not belong to ``team``; None when it does."""
    if not manifest.name.startswith(team.prefix):
        return (f"ownership rule ({FIELD}): pipeline {manifest.name!r} in team {team.name!r}'s folder must be "
                f"named {team.prefix}<name>")
    if manifest.target.executor_type is ExecutorType.KUBERNETES:
        namespace = manifest.target.executor.config.get("namespace")
        if namespace != team.namespace:
            return (f"ownership rule ({FIELD}): pipeline {manifest.name!r} of team {team.name!r} runs pods in "
                    f"namespace {namespace!r}, the team's namespace is {team.namespace!r}")
    return None


def team_uri(root: str, team: Team) -> str:
    """The team's manifests folder under the root location."""
    return f"{root.rstrip('/')}/{team.name}/"
