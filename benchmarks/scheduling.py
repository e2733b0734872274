"""HEFT speed and makespan on 100 to 10,000-task random DAGs, against an established implementation.

Run: .venv/bin/python benchmarks/scheduling.py [--sizes 100,1000,2000,10000] [--machines 16] [--repeats 5]
     [--out DIR] [--peer-timeout 600] [--check-seeds 5] [--peer-python PATH | --no-peer]

Goals (issue 13): HEFT on 2,000 tasks over 16 machines well under a second, at least 10x faster than the
peer, with the same or a better makespan; and how the time grows with tasks and machines.

Graphs: daggen-style DAGs (allocate.generators.random_dag, defaults fat 0.5, density 0.5, regularity 0.9,
jump 1; seed = SEED + tasks), on a platform of 16 machines whose speeds are drawn once from U[0.5, 2) with
SEED (the 4- and 64-machine platforms of the machine scan are the first 4 and all 64 of the same draw),
every pair linked at one bandwidth, BANDWIDTH bytes/s, which puts the communication-to-computation ratio
near 1 (printed per graph: mean edge transfer time over mean task runtime). Each graph and platform is
written as WF.json and P.json, and both schedulers read those same files.

The peer is HEFT of the anrg-saga package (``HeftScheduler``). Its licence forbids commercial use, so it is
no project dependency: it is installed only in a venv of its own, outside the project tree, under
~/.cache/jouletrace-bench/saga-venv (made once with a Python >= 3.12, which it requires; --peer-python
names another interpreter that has it), and runs as a separate process, benchmarks/saga_peer.py, with
PYTHONHASHSEED=0 (saga iterates machines in set order, so that its ties go the same way every run).

What is timed (wall clock, time.perf_counter, median of --repeats runs; the CPU time of the same runs,
time.process_time, is kept too, and gives the "(cpu)" speed-up, less sensitive to a busy machine):
- ours: ``schedulers.heft(problem)``, the whole call: upward ranks, list scheduling and the simulator's
  replay that validates the schedule (``seconds_to_schedule``, the part before the replay, is kept too);
  ``build_problem`` apart;
- the peer: ``HeftScheduler().schedule(network, task_graph)`` alone, on fresh graph objects with saga's
  memoised ranks cleared; building its TaskGraph and Network apart. A peer process still running after
  --peer-timeout seconds is stopped and reported as timed out (with the repeats it had finished, if any);
- ours as a process: ``jouletrace schedule`` on the same files (reading, scheduling, writing S.json,
  interpreter start included), when the CLI has that command.

Checks: our schedule passes our simulator (heft raises otherwise); the peer's assignments are replayed in
our simulator (valid under our model, and the same makespan); and our engine, given the peer's own
priority list (saga's heft_rank_sort, read after the timed runs), rebuilds the peer's makespan, which
shows whether a makespan gap comes from the priorities (the mean communication cost in the upward rank,
the order of equal ranks) rather than from the placement. --check-seeds more graphs of each size up to
1,000 tasks compare the makespans over several seeds, since one graph's ratio is one draw.

Scaling: the growth exponent is the least-squares slope of log time over log tasks (16 machines), and over
log machines (2,000 tasks on 4, 16, 64 machines). Results: results.json and time_vs_tasks.png in --out
(default: a new folder under /tmp).
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from allocate.generators import random_dag  # noqa: E402
from allocate.io import workflow_to_json, write_json  # noqa: E402
from allocate.model import Workflow  # noqa: E402
from allocate.scheduling import schedulers  # noqa: E402
from allocate.scheduling.engine import earliest_finish, list_schedule, mean_runtime  # noqa: E402
from allocate.scheduling.platform import Machine, Platform, platform_to_json  # noqa: E402
from allocate.scheduling.problem import Problem, build_problem  # noqa: E402
from allocate.scheduling.schedule import Assignment, Schedule  # noqa: E402
from allocate.scheduling.simulator import simulate  # noqa: E402

SEED = 2026
BANDWIDTH = 1.5e6  # bytes/s: daggen edges carry ~3.5e8 bytes, tasks run ~230 s, so CCR ~ 1
SPEEDS = (0.5, 2.0)
MACHINE_SCAN = (4, 16, 64)
SCAN_TASKS = 2000
GOAL_TASKS, GOAL_SECONDS, GOAL_SPEEDUP = 2000, 1.0, 10.0
PEER_PACKAGE = "anrg-saga"
PEER_SCRIPT = Path(__file__).with_name("saga_peer.py")
PEER_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jouletrace-bench" / "saga-venv"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,2000,10000", help="tasks per DAG, comma-separated")
    parser.add_argument("--machines", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per graph (median reported)")
    parser.add_argument("--out", help="folder for results.json, the plot and the graphs (default: /tmp)")
    parser.add_argument("--peer-timeout", type=float, default=600.0, help="seconds per peer process")
    parser.add_argument("--check-seeds", type=int, default=5, help="extra seeds for the makespan check")
    parser.add_argument("--peer-python", help="a Python that can import saga (default: its own venv)")
    parser.add_argument("--no-peer", action="store_true", help="time ours only")
    return parser.parse_args(argv)


# --- inputs -------------------------------------------------------------------------------------------


def make_platform(machines: int) -> Platform:
    speeds = np.random.default_rng(SEED).uniform(*SPEEDS, size=max(machines, max(MACHINE_SCAN)))
    return Platform(
        f"bench-{machines}",
        tuple(Machine(f"m{i:02d}", speed=round(float(s), 6)) for i, s in enumerate(speeds[:machines])),
        bandwidth_bytes_per_second=BANDWIDTH,
    )


def write_inputs(folder: Path, tasks: int, seed: int, platform: Platform) -> tuple[Workflow, Path, Path]:
    workflow = random_dag(tasks, seed=seed)
    wf, p = folder / f"WF-n{tasks}-s{seed}.json", folder / f"P-{len(platform.machines)}.json"
    write_json(workflow_to_json(workflow), wf)
    if not p.exists():
        write_json(platform_to_json(platform), p)
    return workflow, wf, p


def ccr(problem: Problem) -> float:
    """Mean transfer time of an edge between two machines over the mean runtime of a task."""
    _, _, data = problem.edges()
    if not len(data):
        return 0.0
    return float(data.mean() * problem.mean_seconds_per_byte() / mean_runtime(problem).mean())


# --- ours ---------------------------------------------------------------------------------------------


def _timed(call, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall and CPU seconds of ``repeats`` calls, and the last call's value."""
    seconds, cpu_seconds, value = [], [], None
    for _ in range(max(1, repeats)):
        gc.collect()
        began, cpu = time.perf_counter(), time.process_time()
        value = call()
        seconds.append(time.perf_counter() - began)
        cpu_seconds.append(time.process_time() - cpu)
    return seconds, cpu_seconds, value


def time_ours(workflow: Workflow, platform: Platform, repeats: int) -> tuple[dict, Problem, object]:
    build, _, problem = _timed(lambda: build_problem(workflow, platform), min(repeats, 3))
    runs, cpu, result = _timed(lambda: schedulers.heft(problem), repeats)
    stats = {
        "build_seconds": statistics.median(build),
        "schedule_seconds": runs,
        "median_schedule_seconds": statistics.median(runs),
        "median_schedule_cpu_seconds": statistics.median(cpu),
        "seconds_to_schedule": result.schedule.seconds_to_schedule,  # last run, before the replay
        "makespan_seconds": result.simulation.makespan_seconds,
        "valid": result.simulation.valid,
    }
    return stats, problem, result


def cli_has_schedule() -> bool:
    return any('add_parser("schedule"' in f.read_text() for f in (ROOT / "pipelines").glob("*.py"))


def time_cli(wf: Path, p: Path, out: Path, repeats: int) -> dict:
    """``jouletrace schedule`` as a process on the same files: median wall time and the makespan it wrote."""
    exe = Path(sys.executable).with_name("jouletrace")
    command = [str(exe), "schedule", "--workflow", str(wf), "--platform", str(p), "--out", str(out)]
    seconds = []
    for _ in range(max(1, min(repeats, 3))):
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        seconds.append(time.perf_counter() - began)
        if done.returncode:
            return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return {
        "median_seconds": statistics.median(seconds),
        "makespan_seconds": json.loads(out.read_text())["makespan_seconds"],
    }


# --- the peer -----------------------------------------------------------------------------------------


def _imports_saga(python: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import saga.schedulers"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _python_312() -> str | None:
    """A working Python >= 3.12 (pyenv shims exist for versions that are not selected, so each is run)."""
    names = [shutil.which(f"python3.{minor}") for minor in (12, 13, 14)]
    names += sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.1[2-9]*/bin/python3")))
    for name in filter(None, names):
        try:
            done = subprocess.run(
                [name, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip() == "True":
            return name
    return None


def peer_python(explicit: str | None) -> tuple[str | None, str]:
    """The interpreter to run the peer with, making its venv once; (None, why) when it cannot be had."""
    if explicit:
        return (explicit, "given") if _imports_saga(explicit) else (None, f"{explicit} cannot import saga")
    python = PEER_VENV / "bin" / "python"
    if python.exists() and _imports_saga(str(python)):
        return str(python), f"cached venv {PEER_VENV}"
    base = _python_312()
    if base is None:
        return None, f"{PEER_PACKAGE} needs Python >= 3.12 and none was found"
    print(f"making the peer's venv {PEER_VENV} with {base} and installing {PEER_PACKAGE} ...", flush=True)
    PEER_VENV.parent.mkdir(parents=True, exist_ok=True)
    steps = (
        [base, "-m", "venv", "--clear", str(PEER_VENV)],
        [str(python), "-m", "pip", "install", "-q", PEER_PACKAGE],
    )
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            return None, f"{' '.join(step[:4])} ... took over 30 min"
        if done.returncode:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            return None, f"{' '.join(step[:4])} ... failed: {tail}"
    if not _imports_saga(str(python)):
        return None, f"{PEER_PACKAGE} installed in {PEER_VENV} but saga does not import"
    return str(python), f"new venv {PEER_VENV}"


def run_peer(python: str, wf: Path, p: Path, out: Path, repeats: int, timeout: float) -> dict:
    """The peer's numbers from its own process; ``status`` is ok, timed out or failed."""
    out.unlink(missing_ok=True)
    command = [python, str(PEER_SCRIPT), "--workflow", str(wf), "--platform", str(p), "--out", str(out)]
    command += ["--repeats", str(repeats), "--budget", str(timeout / 2)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    began = time.perf_counter()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            _, err = proc.communicate(timeout=timeout)
            status = "ok" if proc.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            proc.kill()  # only the peer process this function started
            _, err = proc.communicate()
            status = "timed out"
    data = json.loads(out.read_text()) if out.exists() else {}
    data["status"], data["process_seconds"] = status, time.perf_counter() - began
    if status == "failed":
        data["error"] = " | ".join(err.strip().splitlines()[-3:])
    return data


def _rebuild_schedule(problem: Problem, assignments: list[dict], name: str) -> Schedule:
    return Schedule(name, [Assignment(**a) for a in assignments], workflow=problem.name)


def check_peer(problem: Problem, result, peer: dict) -> dict:
    """The peer's schedule in our simulator, and our engine on the peer's priority list."""
    if "assignments" not in peer:
        return {}
    replay = simulate(problem, _rebuild_schedule(problem, peer["assignments"], "peer"))
    ours = {a.task_id: a.machine_id for a in result.schedule.assignments}
    same = sum(ours[a["task_id"]] == a["machine_id"] for a in peer["assignments"])
    check = {
        "peer_valid_in_our_simulator": replay.valid,
        "peer_problems": replay.problems[:3],
        "peer_makespan_in_our_simulator": replay.makespan_seconds,
        "peer_makespan_difference": replay.makespan_seconds - peer["makespan_seconds"],
        "tasks_on_the_same_machine": same / len(problem),
    }
    if peer.get("order"):
        index = {t: i for i, t in enumerate(problem.task_ids)}
        placed = list_schedule(problem, [index[t] for t in peer["order"]], earliest_finish)
        check["ours_with_peer_order_makespan"] = float(placed.finish.max())
        check["ours_with_peer_order_same_machines"] = float(
            np.mean([problem.platform.ids[placed.machine[index[a["task_id"]]]] == a["machine_id"]
                     for a in peer["assignments"]])
        )  # fmt: skip
    return check


# --- scaling, plot ------------------------------------------------------------------------------------


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y over log x (the growth exponent), None with fewer than 2 points."""
    if len(xs) < 2:
        return None
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    tasks = [r["tasks"] for r in rows]
    ax.loglog(tasks, [r["ours"]["median_schedule_seconds"] for r in rows], "o-", label="jouletrace HEFT")
    ax.loglog(tasks, [r["ours"]["build_seconds"] for r in rows], "o:", label="jouletrace build_problem")
    done = [r for r in rows if r["peer"].get("median_schedule_seconds")]
    if done:
        ax.loglog(
            [r["tasks"] for r in done], [r["peer"]["median_schedule_seconds"] for r in done], "s-",
            label=f"{PEER_PACKAGE} HeftScheduler",
        )  # fmt: skip
        ax.loglog(
            [r["tasks"] for r in done], [r["peer"]["build_seconds"] for r in done], "s:",
            label=f"{PEER_PACKAGE} graph building",
        )  # fmt: skip
    for r in rows:
        if r["peer"].get("status") == "timed out" and not r["peer"].get("median_schedule_seconds"):
            ax.annotate("peer timed out", (r["tasks"], r["ours"]["median_schedule_seconds"]), fontsize=8)
    ax.axhline(GOAL_SECONDS, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("tasks (daggen DAG)")
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"HEFT time vs tasks, {rows[0]['machines']} machines")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# --- main ---------------------------------------------------------------------------------------------


def _fmt(value, spec: str = ".3f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _peer_cell(peer: dict) -> str:
    if peer.get("median_schedule_seconds") is not None:
        cell = f"{peer['median_schedule_seconds']:.3f}"
        return cell + (" (t/o)" if peer["status"] == "timed out" else "")
    return {"timed out": "timed out", "failed": "failed"}.get(peer.get("status", ""), "-")


def size_row(tasks: int, platform: Platform, folder: Path, args, python: str | None, cli: bool) -> dict:
    workflow, wf, p = write_inputs(folder, tasks, SEED + tasks, platform)
    ours, problem, result = time_ours(workflow, platform, args.repeats)
    row = {
        "tasks": tasks,
        "edges": len(workflow.edges),
        "machines": len(platform.machines),
        "ccr": ccr(problem),
        "ours": ours,
    }
    print(f"  {tasks} tasks, {row['edges']} edges, CCR {row['ccr']:.2f}: ours {ours['median_schedule_seconds']:.3f} s",
          flush=True)  # fmt: skip
    if cli:
        row["ours_process"] = time_cli(wf, p, folder / f"S-n{tasks}.json", args.repeats)
    row["peer"] = {"status": "not run"}
    if python:
        peer = run_peer(python, wf, p, folder / f"peer-n{tasks}.json", args.repeats, args.peer_timeout)
        row["check"] = check_peer(problem, result, peer)
        peer.pop("assignments", None)
        peer.pop("order", None)
        row["peer"] = peer
        done = f", {peer['median_schedule_seconds']:.3f} s" if peer.get("median_schedule_seconds") else ""
        print(
            f"    peer: {peer['status']}{done} ({peer['process_seconds']:.1f} s in its process)", flush=True
        )
        if peer.get("median_schedule_seconds"):
            row["speedup"] = peer["median_schedule_seconds"] / ours["median_schedule_seconds"]
            row["speedup_cpu"] = peer["median_schedule_cpu_seconds"] / ours["median_schedule_cpu_seconds"]
            row["makespan_ratio"] = ours["makespan_seconds"] / peer["makespan_seconds"]
    return row


def seed_check(sizes: list[int], platform: Platform, folder: Path, args, python: str) -> list[dict]:
    """Our makespan over the peer's on --check-seeds more graphs of each size up to 1,000 tasks."""
    out = []
    for tasks in [s for s in sizes if s <= 1000]:
        for k in range(1, args.check_seeds + 1):
            seed = SEED + tasks + 1000 * k
            workflow, wf, p = write_inputs(folder, tasks, seed, platform)
            ours = schedulers.heft(build_problem(workflow, platform)).simulation.makespan_seconds
            peer = run_peer(python, wf, p, folder / f"peer-n{tasks}-s{seed}.json", 1, args.peer_timeout)
            if peer.get("makespan_seconds"):
                out.append({"tasks": tasks, "seed": seed, "ratio": ours / peer["makespan_seconds"]})
    return out


def print_tables(rows: list[dict], scan: list[dict], seeds: list[dict], summary: dict) -> None:
    checked = [r for r in rows if r.get("check")]
    if checked:
        print(
            "\nmodel check: the peer's schedule in our simulator, and our engine on the peer's priority list"
        )
        print(f"{'tasks':>6} {'peer makespan':>14} {'valid here':>10} {'replay diff s':>13} "
              f"{'same machine':>12} {'ours on peer order':>18} {'same machine':>12}")  # fmt: skip
        for r in checked:
            c = r["check"]
            print(
                f"{r['tasks']:>6} {r['peer']['makespan_seconds']:>14.2f} {c['peer_valid_in_our_simulator']!s:>10} "
                f"{c['peer_makespan_difference']:>13.2e} {c['tasks_on_the_same_machine']:>12.1%} "
                f"{_fmt(c.get('ours_with_peer_order_makespan'), '.2f'):>18} "
                f"{_fmt(c.get('ours_with_peer_order_same_machines'), '.1%'):>12}"
            )
    print(f"\nmachine scan, {SCAN_TASKS} tasks (ours)")
    print(f"{'machines':>8} {'ours s':>8} {'build s':>8} {'makespan s':>11}")
    for s in scan:
        print(f"{s['machines']:>8} {s['median_schedule_seconds']:>8.3f} {s['build_seconds']:>8.3f} "
              f"{s['makespan_seconds']:>11.1f}")  # fmt: skip
    if seeds:
        print("\nmakespan ours / peer over more seeds")
        for tasks in sorted({s["tasks"] for s in seeds}):
            ratios = [s["ratio"] for s in seeds if s["tasks"] == tasks]
            print(f"  {tasks:>5} tasks: " + " ".join(f"{x:.4f}" for x in ratios)
                  + f"  (geometric mean {np.exp(np.mean(np.log(ratios))):.4f}, ours <= peer on "
                  f"{sum(x <= 1 + 1e-9 for x in ratios)}/{len(ratios)})")  # fmt: skip
    print("\ngrowth exponents (log-log slopes)")
    for key, value in summary["exponents"].items():
        print(f"  {key:<28} {_fmt(value, '.2f')}")
    print(f"\nHEFT on daggen DAGs, {rows[0]['machines']} machines (median seconds; speed-up = peer / ours)")
    head = (f"{'tasks':>6} {'edges':>7} {'machines':>8} {'ours s':>8} {'ours build':>10} {'ours proc':>9} "
            f"{'peer s':>12} {'peer build':>10} {'speed-up':>8} {'(cpu)':>6} {'mk ours/peer':>12}")  # fmt: skip
    print(head)
    for r in rows:
        proc = r.get("ours_process", {}).get("median_seconds")
        print(
            f"{r['tasks']:>6} {r['edges']:>7} {r['machines']:>8} {r['ours']['median_schedule_seconds']:>8.3f} "
            f"{r['ours']['build_seconds']:>10.3f} {_fmt(proc):>9} {_peer_cell(r['peer']):>12} "
            f"{_fmt(r['peer'].get('build_seconds')):>10} {_fmt(r.get('speedup'), '.1f'):>8} "
            f"{_fmt(r.get('speedup_cpu'), '.1f'):>6} "
            f"{_fmt(r.get('makespan_ratio'), '.4f'):>12}"
        )
    print("\ngoals")
    for key, value in summary["goals"].items():
        print(f"  {key:<28} {value}")


def goals(rows: list[dict]) -> dict:
    goal = next((r for r in rows if r["tasks"] == GOAL_TASKS), None)
    if goal is None:
        return {"note": f"no {GOAL_TASKS}-task graph in --sizes"}
    seconds = goal["ours"]["median_schedule_seconds"]
    out = {f"{GOAL_TASKS} tasks < {GOAL_SECONDS:g} s": f"{seconds < GOAL_SECONDS} ({seconds:.3f} s)"}
    speedup, ratio = goal.get("speedup"), goal.get("makespan_ratio")
    missing = f"peer not measured ({goal['peer'].get('status')})"
    out[f">= {GOAL_SPEEDUP:g}x faster than peer"] = (
        missing
        if speedup is None
        else f"{speedup >= GOAL_SPEEDUP} ({speedup:.1f}x wall, {goal['speedup_cpu']:.1f}x CPU)"
    )
    out["makespan <= peer's"] = missing if ratio is None else f"{ratio <= 1 + 1e-9} ({ratio:.4f})"
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="jouletrace-scheduling-bench-"))
    folder = out / "graphs"
    folder.mkdir(parents=True, exist_ok=True)
    python, how = (None, "--no-peer") if args.no_peer else peer_python(args.peer_python)
    print(f"peer ({PEER_PACKAGE}): {python or 'UNAVAILABLE'} ({how})")
    cli = cli_has_schedule()
    if not cli:
        print("`jouletrace schedule` is not in pipelines/: the whole-process column is skipped")

    platform = make_platform(args.machines)
    rows = [size_row(tasks, platform, folder, args, python, cli) for tasks in sizes]
    scan = []
    for machines in MACHINE_SCAN:
        workflow = random_dag(SCAN_TASKS, seed=SEED + SCAN_TASKS)
        ours, _, _ = time_ours(workflow, make_platform(machines), args.repeats)
        scan.append({"machines": machines, **ours})
    seeds = seed_check(sizes, platform, folder, args, python) if python and args.check_seeds else []

    peer_done = [r for r in rows if r["peer"].get("median_schedule_seconds")]
    summary = {
        "exponents": {
            "ours vs tasks": slope(sizes, [r["ours"]["median_schedule_seconds"] for r in rows]),
            "ours vs edges": slope(
                [r["edges"] for r in rows], [r["ours"]["median_schedule_seconds"] for r in rows]
            ),
            "ours build vs tasks": slope(sizes, [r["ours"]["build_seconds"] for r in rows]),
            "peer vs tasks": slope(
                [r["tasks"] for r in peer_done], [r["peer"]["median_schedule_seconds"] for r in peer_done]
            ),
            "peer build vs tasks": slope(
                [r["tasks"] for r in peer_done], [r["peer"]["build_seconds"] for r in peer_done]
            ),
            f"ours vs machines ({SCAN_TASKS} t)": slope(
                [s["machines"] for s in scan], [s["median_schedule_seconds"] for s in scan]
            ),
        },  # fmt: skip
        "goals": goals(rows),
    }
    print_tables(rows, scan, seeds, summary)
    results = {
        "seed": SEED,
        "bandwidth_bytes_per_second": BANDWIDTH,
        "speeds": [m.speed for m in platform.machines],
        "repeats": args.repeats,
        "peer": {"package": PEER_PACKAGE, "python": python, "how": how},
        "ours_process_column": cli,
        "sizes": rows,
        "machine_scan": scan,
        "seed_check": seeds,
        **summary,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    plot(rows, out / "time_vs_tasks.png")
    print(f"\nwrote {out / 'results.json'} and {out / 'time_vs_tasks.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
