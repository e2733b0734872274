"""The peer side of benchmarks/scheduling.py: HEFT of the anrg-saga package on a WF.json and a P.json.

It runs with the Python of the benchmark's own environment for the peer (never the project's: anrg-saga is
no project dependency, its licence forbids commercial use) and imports nothing from jouletrace. It reads
the two files, builds saga's TaskGraph (cost = work_seconds, edge size = data_bytes) and Network (node
speed = machine speed, one bandwidth on every link between two machines, an infinite one on each
machine's self-loop so that data on one machine moves in no time), so that a runtime is
work_seconds / speed as in jouletrace. It then times ``HeftScheduler().schedule(network, task_graph)``
alone, ``repeats`` times on fresh copies of the two graphs with saga's cached upward ranks cleared, and
writes the times, the makespan and every task's node, start and end to --out after each repeat (so that a
run stopped by a timeout keeps what it had measured), then saga's priority list of the last run (its
``heft_rank_sort``, not timed). Building the graphs is timed apart.

Run: <peer python> benchmarks/saga_peer.py --workflow WF.json --platform P.json --out PEER.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

from saga import Network, TaskGraph
from saga.schedulers import HeftScheduler
from saga.schedulers.cpop import upward_rank
from saga.schedulers.heft import heft_rank_sort

SUPER_TASKS = ("__super_source__", "__super_sink__")  # zero-cost tasks saga adds for one entry and exit


def build(workflow: dict, platform_json: dict) -> tuple[TaskGraph, Network]:
    tasks = [(t["id"], float(t["work_seconds"])) for t in workflow["tasks"]]
    edges = [(e["source"], e["target"], float(e.get("data_bytes", 0.0))) for e in workflow["edges"]]
    machines = [(m["id"], float(m.get("speed", 1.0))) for m in platform_json["machines"]]
    bandwidth = float(platform_json["bandwidth_bytes_per_second"])
    links = [(a, b, bandwidth) for i, (a, _) in enumerate(machines) for b, _ in machines[i + 1 :]]
    links += [(a, a, math.inf) for a, _ in machines]
    return TaskGraph.create(tasks=tasks, dependencies=edges), Network.create(nodes=machines, edges=links)


def write(data: dict, path: Path) -> None:
    """Whole or not at all: the benchmark may stop this process at any moment."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(data))
    part.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--platform", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=300.0, help="start no repeat past this many seconds")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # saga warns when it adds the super source and sink

    workflow = json.loads(Path(args.workflow).read_text())
    platform_json = json.loads(Path(args.platform).read_text())
    began = time.perf_counter()
    task_graph, network = build(workflow, platform_json)
    build_seconds = time.perf_counter() - began
    out: dict = {
        "package": "anrg-saga",
        "version": metadata.version("anrg-saga"),
        "python": platform.python_version(),
        "tasks": len(workflow["tasks"]),
        "edges": len(workflow["edges"]),
        "build_seconds": build_seconds,
        "schedule_seconds": [],
        "schedule_cpu_seconds": [],
    }
    began = time.perf_counter()
    for _ in range(max(1, args.repeats)):
        fresh_graph = TaskGraph(tasks=task_graph.tasks, dependencies=task_graph.dependencies)
        fresh_network = Network(nodes=network.nodes, edges=network.edges)
        upward_rank.cache_clear()  # saga memoises ranks per (network, task graph): none may be reused
        start, cpu = time.perf_counter(), time.process_time()
        schedule = HeftScheduler().schedule(fresh_network, fresh_graph)
        out["schedule_seconds"].append(time.perf_counter() - start)
        out["schedule_cpu_seconds"].append(time.process_time() - cpu)
        out["median_schedule_seconds"] = statistics.median(out["schedule_seconds"])
        out["median_schedule_cpu_seconds"] = statistics.median(out["schedule_cpu_seconds"])
        out["makespan_seconds"] = schedule.makespan
        out["assignments"] = [
            {"task_id": t.name, "machine_id": node, "start_seconds": t.start, "end_seconds": t.end}
            for node, placed in schedule.items()
            for t in placed
            if t.name not in SUPER_TASKS
        ]
        write(out, Path(args.out))
        spent = time.perf_counter() - began
        if spent + out["schedule_seconds"][-1] > args.budget:
            break
    # The priority list of the last run (its ranks are still memoised): the benchmark replays it.
    out["order"] = [t for t in heft_rank_sort(fresh_network, fresh_graph) if t not in SUPER_TASKS]
    write(out, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
