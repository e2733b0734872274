"""Online execution of a workflow under uncertain runtimes: the state every online scheduler acts on.

The offline schedulers (allocate/scheduling/) plan with the expected runtimes and never see a task end
late. Here a workflow runs: each task's actual runtime is its expected one times a factor drawn when the
run starts (uniform in ``1 +- spread``, default +-30%, or drawn from measured runtime ratios of real task
types, the traced mode), and its energy above idle scales with it. A scheduler only ever sees the
expected numbers, the ends of tasks that have finished and the starts of tasks that have started.

Decisions: whenever tasks are ready (every parent has ended) a scheduler commits one ready task at a time
to a machine that has its device; the task joins that machine's queue and runs on the core (and GPU or
FPGA) that frees first, once its parents' data has arrived. When no task is ready, time moves to the next
task end. Committing a task to a busy machine is how a scheduler waits for a better machine. The run is
over when every task has ended; the schedule it leaves is replayed by the simulator (simulator.py) on the
realized runtimes, as every other schedule is.

The expected view (``expected()``) is what a scheduler may know: the expected end of every committed
task (actual for ended tasks, ``max(now, start + expected runtime)`` for running ones, and queued ones
after their slot's previous task), the expected free time of every core and device slot, and each
machine's expected release (its last task's end: idle energy is paid from 0 until then).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace

import numpy as np

from allocate.scheduling.problem import Problem
from allocate.scheduling.schedule import Assignment, Schedule
from allocate.scheduling.simulator import Simulation, simulate

WAITING, READY, COMMITTED, ENDED = 0, 1, 2, 3


@dataclass(frozen=True)
class NoiseOptions:
    """How actual runtimes differ from expected ones: uniform in ``1 +- spread``, or, with ``traced_factors``
    (measured runtime over the median of its task type, from a trace), drawn from those ratios."""

    spread: float = 0.3
    traced_factors: tuple[float, ...] = ()

    def __post_init__(self):
        if not 0.0 <= self.spread < 1.0:
            raise ValueError(f"noise spread must be in [0, 1), not {self.spread}")
        if any(not f > 0 for f in self.traced_factors):
            raise ValueError("traced runtime factors must all be > 0")

    def draw(self, tasks: int, rng: np.random.Generator) -> np.ndarray:
        if self.traced_factors:
            return rng.choice(np.asarray(self.traced_factors, dtype=float), size=tasks)
        if self.spread == 0:
            return np.ones(tasks)
        return rng.uniform(1.0 - self.spread, 1.0 + self.spread, size=tasks)


@dataclass(frozen=True)
class ExpectedView:
    """What schedulers may know at the current decision (seconds from the run's start)."""

    end: np.ndarray  # per task: actual for ended, expected for committed, nan otherwise
    core_free: np.ndarray  # [machines, max cores], inf beyond a machine's cores
    device_free: np.ndarray  # [machines, max devices], inf beyond a machine's GPUs/FPGAs
    release: np.ndarray  # per machine: expected end of its last task, 0 if unused


class OnlineRun:
    """One run of ``problem`` with per-task runtime ``factors`` (actual = expected x factor)."""

    def __init__(self, problem: Problem, factors: np.ndarray):
        self.problem = problem
        self.factors = np.asarray(factors, dtype=float)
        n, machines = len(problem), problem.platform.machines
        self.actual_runtime = problem.runtime_seconds * self.factors[:, None]
        self.feasible = problem.feasible  # [tasks, machines]: the machine has the task's device
        self.status = np.full(n, WAITING, dtype=np.int8)
        self.machine = np.full(n, -1, dtype=np.int64)
        self.slot = np.full(n, -1, dtype=np.int64)
        self.device_slot = np.full(n, -1, dtype=np.int64)
        self.start = np.full(n, np.nan)
        self.end = np.full(n, np.nan)
        self.waiting_parents = np.array([len(p) for p in problem.parents], dtype=np.int64)
        self.status[self.waiting_parents == 0] = READY
        self.cores = np.array([m.cores for m in machines])
        self.device_slots = np.array([max(m.gpus, m.fpgas) for m in machines])
        self.core_free = np.where(np.arange(self.cores.max()) < self.cores[:, None], 0.0, np.inf)
        width = max(int(self.device_slots.max()), 1)
        self.device_free = np.where(np.arange(width) < self.device_slots[:, None], 0.0, np.inf)
        self.is_device_task = np.array([d != "cpu" for d in problem.devices])
        self.now = 0.0
        self.completions = 0  # how many times time moved to a task end (dynamic schedulers re-plan then)
        self._running: list[tuple[float, int]] = []
        self._view: ExpectedView | None = None

    # --- state -----------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return bool((self.status == ENDED).all())

    def ready_tasks(self) -> np.ndarray:
        return np.flatnonzero(self.status == READY)

    def action_mask(self) -> np.ndarray:
        """[tasks, machines]: True where a ready task may be committed to a machine."""
        return (self.status == READY)[:, None] & self.feasible

    def arrival(self, task: int) -> np.ndarray:
        """Per machine: when the task's parents' data is there (all parents have ended)."""
        arrival = np.zeros(self.problem.machines)
        parents = self.problem.parents[task]
        if parents:
            p = np.asarray(parents)
            sizes = np.asarray(self.problem.parent_bytes[task])
            transfer = sizes[:, None] * self.problem.seconds_per_byte[self.machine[p]]
            arrival = (self.end[p][:, None] + transfer).max(axis=0)
        return arrival

    # --- acting ----------------------------------------------------------------------------------------
    def commit(self, task: int, machine: int) -> None:
        """Queue a ready task on a machine; time moves on to the next end while nothing is ready."""
        if self.status[task] != READY or not self.feasible[task, machine]:
            raise ValueError(f"task {self.problem.task_ids[task]} cannot be committed to machine {machine}")
        slot = int(np.argmin(self.core_free[machine]))
        start = max(float(self.arrival(task)[machine]), float(self.core_free[machine, slot]))
        device_slot = int(np.argmin(self.device_free[machine]))
        if self.is_device_task[task]:
            start = max(start, float(self.device_free[machine, device_slot]))
        end = start + self.actual_runtime[task, machine]
        if self.is_device_task[task]:
            self.device_free[machine, device_slot] = end
            self.device_slot[task] = device_slot
        self.core_free[machine, slot] = end
        self.status[task] = COMMITTED
        self.machine[task], self.slot[task], self.start[task], self.end[task] = machine, slot, start, end
        heapq.heappush(self._running, (end, task))
        self._view = None
        while not (self.status == READY).any() and self._running:
            self._advance()

    def _advance(self) -> None:
        end, _ = self._running[0]
        self.now = end
        self.completions += 1
        while self._running and self._running[0][0] <= end:
            _, task = heapq.heappop(self._running)
            self.status[task] = ENDED
            for child in self.problem.children[task]:
                self.waiting_parents[child] -= 1
                if self.waiting_parents[child] == 0:
                    self.status[child] = READY

    # --- what a scheduler may know ---------------------------------------------------------------------
    def expected(self) -> ExpectedView:
        if self._view is None:
            self._view = self._expected()
        return self._view

    def _expected(self) -> ExpectedView:
        end = np.where(self.status == ENDED, self.end, np.nan)
        expected_runtime = self.problem.runtime_seconds
        core_free = np.where(np.isfinite(self.core_free), self.now, np.inf)
        device_free = np.where(np.isfinite(self.device_free), self.now, np.inf)
        # Walk each machine's queues in commit order: a task's slot predecessors come before it.
        order = np.flatnonzero(self.status == COMMITTED)
        order = order[np.argsort(self.start[order], kind="stable")]
        for task in order.tolist():
            m = self.machine[task]
            if self.start[task] <= self.now:  # running: its start is known
                finish = max(self.now, self.start[task] + expected_runtime[task, m])
            else:
                begin = max(self.now, core_free[m, self.slot[task]], self._arrival_at(task, m, end))
                if self.is_device_task[task]:
                    begin = max(begin, device_free[m, self.device_slot[task]])
                finish = begin + expected_runtime[task, m]
            end[task] = finish
            core_free[m, self.slot[task]] = max(core_free[m, self.slot[task]], finish)
            if self.is_device_task[task]:
                device_free[m, self.device_slot[task]] = max(device_free[m, self.device_slot[task]], finish)
        release = np.zeros(self.problem.machines)
        placed = np.flatnonzero(~np.isnan(end))
        np.maximum.at(release, self.machine[placed], end[placed])
        return ExpectedView(end, core_free, device_free, release)

    def _arrival_at(self, task: int, machine: int, end: np.ndarray) -> float:
        parents = self.problem.parents[task]
        if not parents:
            return 0.0
        p = np.asarray(parents)
        sizes = np.asarray(self.problem.parent_bytes[task])
        return float((end[p] + sizes * self.problem.seconds_per_byte[self.machine[p], machine]).max())

    def candidates(self, task: int) -> dict[str, np.ndarray]:
        """Per machine (inf where it lacks the device): expected start, finish, and the energy the
        placement adds (the task's energy above idle plus idle power over the release it extends)."""
        view = self.expected()
        m = self.problem.machines
        feasible = self.feasible[task]
        start = np.maximum(self.arrival(task), view.core_free.min(axis=1))
        if self.is_device_task[task]:
            start = np.maximum(start, view.device_free.min(axis=1))
        start = np.maximum(start, self.now)
        finish = start + self.problem.runtime_seconds[task]
        grown = np.maximum(finish - view.release, 0.0)
        added = self.problem.energy_joules[task] + self.problem.idle_watts * grown
        inf = np.full(m, np.inf)
        return {
            "start": np.where(feasible, start, inf),
            "finish": np.where(feasible, finish, inf),
            "energy_joules": np.where(feasible, added, inf),
        }

    def estimate(self) -> tuple[float, float]:
        """Expected makespan and energy of the tasks committed so far (exact once the run is over)."""
        view = self.expected()
        placed = np.flatnonzero(self.machine >= 0)
        if not len(placed):
            return 0.0, 0.0
        ended = self.status[placed] == ENDED
        busy = self.problem.energy_joules[placed, self.machine[placed]]
        busy = np.where(ended, busy * self.factors[placed], busy).sum()
        return float(np.nanmax(view.end)), float(busy + np.dot(self.problem.idle_watts, view.release))

    # --- the result ------------------------------------------------------------------------------------
    def realized_problem(self) -> Problem:
        """The problem with the runtimes and energies that actually happened, for the simulator."""
        return replace(
            self.problem,
            runtime_seconds=self.actual_runtime,
            energy_joules=self.problem.energy_joules * self.factors[:, None],
        )

    def schedule(self, algorithm: str, parameters: dict, seconds_to_schedule: float = 0.0) -> Schedule:
        if not self.done:
            raise ValueError("the run is not over: tasks remain to be committed")
        ids, machines = self.problem.task_ids, self.problem.platform.ids
        return Schedule(
            algorithm=algorithm,
            assignments=[
                Assignment(ids[v], machines[self.machine[v]], float(self.start[v]), float(self.end[v]))
                for v in range(len(self.problem))
            ],
            parameters=parameters,
            seconds_to_schedule=seconds_to_schedule,
            workflow=self.problem.name,
            platform=self.problem.platform.name,
        )

    def replay(self, algorithm: str = "online", parameters: dict | None = None) -> Simulation:
        """The simulator's figures of the finished run on its realized runtimes (problems if invalid)."""
        return simulate(self.realized_problem(), self.schedule(algorithm, parameters or {}))
