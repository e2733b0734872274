"""A recorded-source folder (docs/recorded-sources.md), read with the parsers live servers feed.

Every error names the file it came from, so a user can fix a saved response by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import schemas
from collectors.cluster.argo import parse_workflow
from collectors.cluster.kubernetes import join_pods, nodes_to_machines, pods_to_table_rows
from schemas.tables import KEYS, PROVENANCES, UTC_TIMESTAMP

# A folder saved from a real cluster by hand may have no manifest: its numbers are measured.
DEFAULT_MANIFEST = {
    "cluster": "unknown",
    "provenance": "measured",
    "generator": None,
    "seed": None,
    "created_at": None,
}
POWER_SORT_KEYS = ("host_node", "device_kind", "device_id", "value_kind", "timestamp")
CONTAINER_SORT_KEYS = KEYS["container_samples"]


class RecordedSources:
    """The saved Argo workflows, Kubernetes pods/nodes and node-agent readings of one folder."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"{self.directory}: no such recorded-source folder")
        manifest_path = self.directory / "manifest.json"
        recorded = _read_json(manifest_path) if manifest_path.exists() else {}
        if not isinstance(recorded, dict):
            raise ValueError(f"{manifest_path}: expected a JSON object")
        self.manifest = {**DEFAULT_MANIFEST, **recorded}
        if self.manifest["provenance"] not in PROVENANCES:
            raise ValueError(
                f"{manifest_path}: provenance {self.manifest['provenance']!r} is not one of {list(PROVENANCES)}"
            )

    def workflow_objects(self) -> list[dict]:
        """Argo `Workflow` objects of argo/workflows/<namespace>/<name>.json, in path order."""
        return [obj for _, obj in self._json_files("argo/workflows")]

    def pod_lists(self) -> list[dict]:
        """`PodList`s of kubernetes/pods/<namespace>/<workflow-name>.json, in path order."""
        return [obj for _, obj in self._json_files("kubernetes/pods")]

    def node_list(self) -> dict:
        path = self.directory / "kubernetes" / "nodes.json"
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: no NodeList recorded (save it with `kubectl get nodes -o json`)"
            )
        return _read_json(path)

    def workflows_and_tasks(self) -> tuple[pa.Table, pa.Table]:
        """Validated `workflows` and `tasks` tables: Argo nodes joined with their pods."""
        cluster, provenance = self.manifest["cluster"], self.manifest["provenance"]
        workflow_rows, task_rows = [], []
        for path, obj in self._json_files("argo/workflows"):
            try:
                workflow, tasks = parse_workflow(obj, cluster, provenance)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from exc
            workflow_rows.append(workflow)
            task_rows.extend(tasks)
        pods = []
        for path, podlist in self._json_files("kubernetes/pods"):
            try:
                pods.extend(pods_to_table_rows(podlist))
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from exc
        source = str(self.directory)
        workflows = schemas.validate("workflows", schemas.conform("workflows", workflow_rows), source)
        names = {row["workflow_uid"]: row["workflow_name"] for row in workflow_rows}
        try:
            tasks = join_pods(schemas.conform("tasks", task_rows), pods, names)
        except ValueError as exc:
            raise ValueError(f"{self.directory / 'kubernetes' / 'pods'}: {exc}") from exc
        return workflows, schemas.validate("tasks", tasks, source)

    def machines(self) -> pa.Table:
        path = self.directory / "kubernetes" / "nodes.json"
        try:
            return nodes_to_machines(self.node_list(), self.manifest["provenance"])
        except schemas.SchemaError as exc:
            raise _renamed(exc, path) from None
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def power_samples(
        self,
        host_nodes: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """Readings of power/<host_node>.parquet between start and end (both inclusive).

        All nodes when `host_nodes` is None; a node without a file has no readings. Each file is
        cast to the schema and validated, and its rows must all belong to the node it is named after.
        """
        return self._node_files("power", "power_samples", POWER_SORT_KEYS, host_nodes, start, end)

    def container_samples(
        self,
        host_nodes: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """Per-container readings of containers/<host_node>.parquet (cgroup CPU seconds, per-pod joules).

        Selected, validated and checked like `power_samples`; no containers/ folder gives an empty table.
        """
        return self._node_files(
            "containers", "container_samples", CONTAINER_SORT_KEYS, host_nodes, start, end
        )

    def _node_files(
        self,
        folder_name: str,
        table_name: str,
        sort_keys: Iterable[str],
        host_nodes: Iterable[str] | None,
        start: datetime | None,
        end: datetime | None,
    ) -> pa.Table:
        """The `table_name` rows of <folder_name>/<host_node>.parquet between start and end, sorted."""
        folder = self.directory / folder_name
        if host_nodes is None:
            paths = sorted(folder.glob("*.parquet"))
        else:
            paths = [folder / f"{host}.parquet" for host in sorted(set(host_nodes))]
        tables = []
        for path in paths:
            if not path.exists():
                continue
            table = _read_node_file(path, table_name)
            if start is not None:
                table = table.filter(pc.greater_equal(table["timestamp"], _utc_scalar(start, "start")))
            if end is not None:
                table = table.filter(pc.less_equal(table["timestamp"], _utc_scalar(end, "end")))
            tables.append(table)
        if not tables:
            return schemas.empty(table_name)
        return pa.concat_tables(tables).sort_by([(key, "ascending") for key in sort_keys])

    def _json_files(self, folder: str) -> list[tuple[Path, dict]]:
        """(path, object) of <folder>/<namespace>/<name>.json."""
        return [(path, _read_json(path)) for path in sorted((self.directory / folder).glob("*/*.json"))]


def _read_json(path: Path):
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None


def _read_node_file(path: Path, table_name: str) -> pa.Table:
    """One node's readings, validated; a row naming another node (or none) is an error."""
    try:
        raw = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file: {exc}") from None
    try:
        table = schemas.validate(table_name, schemas.conform(table_name, raw), str(path))
    except schemas.SchemaError as exc:
        raise _renamed(exc, path) from None
    foreign = pc.fill_null(pc.not_equal(table["host_node"], path.stem), True)
    if pc.any(foreign).as_py():
        others = sorted(set(table.filter(foreign)["host_node"].to_pylist()), key=str)
        raise ValueError(f"{path}: holds readings of other nodes {others}; a file holds one node's readings")
    return table


def _renamed(exc: schemas.SchemaError, path: Path) -> schemas.SchemaError:
    """The same schema problems, attributed to the file instead of "<memory>"."""
    for problem in exc.problems:
        problem.source = str(path)
    return schemas.SchemaError(exc.problems)


def _utc_scalar(value: datetime, name: str) -> pa.Scalar:
    if value.tzinfo is None:
        raise ValueError(f"{name} {value.isoformat()} has no time zone; the trace model is UTC only")
    return pa.scalar(value, UTC_TIMESTAMP)
