"""WF.json (workflow), C.json (catalog) and R.json (allocation result) files; formats in docs/allocation.md."""

from __future__ import annotations

import json
from pathlib import Path

from allocate.model import COMPUTE, OR_JOIN, OR_SPLIT, Catalog, Control, Edge, Task, VmType, Workflow
from datasets.store import write_bytes_atomic

WORKFLOW_FORMAT = "jouletrace.workflow/1"
CATALOG_FORMAT = "jouletrace.catalog/1"


def workflow_to_json(workflow: Workflow) -> dict:
    tasks: list[dict] = [_task_to_json(t) for t in workflow.tasks.values()]
    for c in workflow.controls.values():
        vertex: dict = {"id": c.id, "kind": c.kind}
        if c.iterations is not None:
            vertex["iterations"] = {str(n): p for n, p in sorted(c.iterations.items())}
        tasks.append(vertex)
    edges = []
    for e in workflow.edges:
        edge: dict = {"source": e.source, "target": e.target}
        if e.data_bytes:
            edge["data_bytes"] = e.data_bytes
        if e.probability is not None:
            edge["probability"] = e.probability
        if e.loop:
            edge["loop"] = True
        edges.append(edge)
    return {"format": WORKFLOW_FORMAT, "name": workflow.name, "tasks": tasks, "edges": edges}


def _task_to_json(task: Task) -> dict:
    vertex: dict = {"id": task.id}
    if task.work_seconds is not None:
        vertex["work_seconds"] = task.work_seconds
    vertex["alpha"] = task.alpha
    if task.device != "cpu":
        vertex["device"] = task.device
    for name in ("runtime_seconds", "energy_joules"):
        if getattr(task, name):
            vertex[name] = dict(getattr(task, name))
    if task.sources:
        vertex["sources"] = {name: dict(per_machine) for name, per_machine in task.sources.items()}
    return vertex


def _per_machine(vertex: dict, name: str) -> dict[str, float]:
    values = vertex.get(name) or {}
    if not isinstance(values, dict):
        raise ValueError(f"task {vertex['id']}: {name} must map machine ids to numbers")
    try:
        return {str(m): float(v) for m, v in values.items()}
    except (TypeError, ValueError):
        raise ValueError(f"task {vertex['id']}: {name} must map machine ids to numbers") from None


def _task_from_json(vertex: dict) -> Task:
    work = vertex.get("work_seconds")
    return Task(
        vertex["id"],
        None if work is None else float(work),
        float(vertex.get("alpha", 0.0)),
        runtime_seconds=_per_machine(vertex, "runtime_seconds"),
        energy_joules=_per_machine(vertex, "energy_joules"),
        device=vertex.get("device", "cpu"),
        sources={
            str(k): {str(m): str(s) for m, s in v.items()} for k, v in (vertex.get("sources") or {}).items()
        },
    )


def workflow_from_json(data: dict) -> Workflow:
    if "tasks" not in data or "edges" not in data:
        raise ValueError("a workflow file needs `tasks` and `edges` at its top level")
    tasks, controls = {}, {}
    for vertex in data["tasks"]:
        kind = vertex.get("kind", COMPUTE)
        if vertex["id"] in tasks or vertex["id"] in controls:
            raise ValueError(f"vertex id {vertex['id']} is repeated")
        if kind == COMPUTE:
            tasks[vertex["id"]] = _task_from_json(vertex)
        elif kind in (OR_SPLIT, OR_JOIN):
            law = vertex.get("iterations")
            iterations = {int(n): float(p) for n, p in law.items()} if law is not None else None
            controls[vertex["id"]] = Control(vertex["id"], kind, iterations)
        else:
            raise ValueError(f"vertex {vertex['id']}: unknown kind {kind!r}")
    edges = [
        Edge(
            e["source"],
            e["target"],
            float(e.get("data_bytes", 0.0)),
            None if e.get("probability") is None else float(e["probability"]),
            bool(e.get("loop", False)),
        )
        for e in data["edges"]
    ]
    return Workflow(data.get("name", "workflow"), tasks, edges, controls)


def catalog_to_json(catalog: Catalog) -> dict:
    return {
        "format": CATALOG_FORMAT,
        "name": catalog.name,
        "note": catalog.note,
        "bandwidth_bytes_per_second": catalog.bandwidth_bytes_per_second,
        "vm_types": [
            {"type": t.name, "ncpu": t.ncpu, "cost_per_hour": t.cost_per_hour, "speed": t.speed}
            for t in catalog.vm_types
        ],
    }


def catalog_from_json(data: dict) -> Catalog:
    return Catalog(
        name=data.get("name", "catalog"),
        vm_types=tuple(
            VmType(t["type"], int(t["ncpu"]), float(t["cost_per_hour"]), float(t.get("speed", 1.0)))
            for t in data["vm_types"]
        ),
        bandwidth_bytes_per_second=float(data.get("bandwidth_bytes_per_second", 125e6)),
        note=data.get("note", ""),
    )


def read_json(path: str | Path, option: str | None = None) -> dict:
    """A JSON file; errors name the file (and the command-line ``option`` it was given with)."""
    file = Path(path)
    where = f"{file} ({option})" if option else str(file)
    if not file.exists():
        raise FileNotFoundError(f"{where}: no such file")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        if option is None:
            raise  # the caller names the option
        raise ValueError(f"{where}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def write_json(data: dict, path: str | Path) -> Path:
    return write_bytes_atomic((json.dumps(data, indent=1) + "\n").encode(), Path(path))


def read_workflow(path: str | Path) -> Workflow:
    return workflow_from_json(read_json(path))


def read_catalog(path: str | Path) -> Catalog:
    return catalog_from_json(read_json(path))
