"""A workflow (WF.json) for scheduling from a trace dataset's run or a WfFormat file.

Tasks are the run's logical tasks (attempt k > 0 continues a failed attempt k - 1 of the same name and
parents); a task's numbers are its last succeeded attempt's, else its last attempt's (said in its source).
Tasks that never ran (omitted, skipped) are left out, their parents linked to their children. Edge data: the
parent's written bytes shared over its children (dataset), or the sizes of the files the child reads that
the parent writes (WfFormat); 0 when unknown. ``device`` is gpu when the pod held GPUs, fpga when FPGAs.

Per machine, each number with its source in ``sources[field][machine]``:

- where the task ran: ``runtime_seconds`` as the trace has it (source: the row's provenance, ``measured``
  on a real cluster; ``imported`` for WfFormat) and ``energy_joules`` = the ``dynamic_joules`` of the
  additive device kinds (cpu_package, dram, gpu, fpga; source: their provenance). A WfFormat file has
  energy only where it has ``energyInKWh`` (a whole-task total, idle share not separated: said) or
  jouletrace's per-device extension;
- ``work_seconds`` = that runtime x the speed of the machine it ran on (``sources["work_seconds"]`` says
  which speed and where it came from);
- on every other platform machine with the task's device, by default: runtime = work / speed (source
  ``work/speed``), and energy = the measured energy x the runtime ratio, its CPU part also x the ratio of
  the two machines' fitted dynamic watts per busy core (source ``scaled: measured on <host> ...``; none when
  either machine's power is unknown);
- with regressors (``models``, or ``train``): their predictions, scaled to the measured run,
  measured x predicted(here) / predicted(where it ran), so that a task that ran long stays long (raw where
  the run machine's hardware is unknown); source ``predicted: <model> (held-out MAPE)``.

Why work/speed by default: on the sample world (16 workflows) work/speed with the fitted speeds is within
2-4% (median) of the true runtime on the other CPUs and the scaled energy within 5-6%, while XGBoost
regressors trained on the same dataset are 15-16% (runtime) and 19-39% (energy) off: per-machine speeds
fitted from hundreds of runs carry over better than what a regressor learns from a few runs per machine.

Models: ``models`` = {"runtime_seconds": DIR, "energy_joules": DIR}, folders of ``jouletrace train
--dataset`` (before-run). The energy one must predict energy above idle: a ``jouletrace train --target
energy_joules`` folder learns energy with the idle share the attribution gave the task and is refused; the
folders ``train_models`` saves (``jouletrace workflow --save-models DIR``) are trained on ``dynamic_joules``
and say so in their card (``energy_basis``). In-process training uses XGBoost (seconds; trees do not
extrapolate past the runtimes and energies they saw).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from allocate.model import Edge, Task, Workflow
from allocate.scheduling.build_platform import hardware_of, platform_from_dataset
from allocate.scheduling.platform import Platform, platform_from_json
from datasets.store import read_table
from schemas.kinds import ADDITIVE_DEVICE_KINDS

RUNTIME, ENERGY = "runtime_seconds", "energy_joules"
UNFINISHED_PHASES = ("Failed", "Error", "Skipped", "Omitted", "Pending", "Running")
NEVER_RAN = ("Skipped", "Omitted", "Pending")
ENERGY_BASIS = "dynamic_joules"
IN_PROCESS_MODEL = "xgboost"
WORK_OVER_SPEED = "work/speed"
SCALED = "scaled: measured"
Progress = Callable[[str], None]


@dataclass
class Machine:
    """A platform machine as the builders need it: speed, devices and (when known) hardware to predict on."""

    id: str
    speed: float = 1.0
    gpus: int = 0
    fpgas: int = 0
    hardware: dict | None = None
    watts_per_core: float | None = None  # dynamic watts of one busy core, from the platform's power
    speed_source: str = "the platform's speed"

    def has(self, device: str) -> bool:
        return device == "cpu" or (device == "gpu" and self.gpus > 0) or (device == "fpga" and self.fpgas > 0)


@dataclass
class Run:
    """One logical task of a run: the numbers of the attempt kept and where they came from."""

    id: str
    host: str | None
    runtime: float
    runtime_source: str
    device: str = "cpu"
    energy: float | None = None  # joules above idle: cpu_energy + accelerator_energy
    energy_source: str | None = None
    accelerator_energy: float = 0.0  # the GPU/FPGA part of energy (does not scale with the CPU's watts)


@dataclass
class Model:
    loaded: object  # models.store.LoadedModel
    label: str  # what sources say of it


@dataclass
class Built:
    """What a builder gathered before the Workflow is made."""

    name: str
    runs: list[Run]
    edges: list[tuple[str, str, float]]
    machines: list[Machine]
    reference: str | None
    run_hardware: dict[str, dict] = field(default_factory=dict)  # hardware of the machines tasks ran on


# ------------------------------------------------------------------------------------------------ platform


def platform_machines(platform: Platform | Mapping | str | Path) -> tuple[list[Machine], str | None]:
    """The machines of a P.json (file or data: its entries' ``hardware`` is kept) or of a Platform."""
    if isinstance(platform, str | Path):
        from allocate.io import read_json

        data = read_json(platform)
        where = str(platform)
    else:
        data, where = platform, "platform"
    if isinstance(data, Platform):
        return [_machine(m) for m in data.machines], None
    try:
        parsed = platform_from_json(data)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    entries = {e["id"]: e for e in data["machines"]}
    machines = []
    for m in parsed.machines:
        hardware = entries[m.id].get("hardware")
        machine = _machine(m, hardware if isinstance(hardware, dict) else None)
        said = (entries[m.id].get("sources") or {}).get("speed")
        machine.speed_source = said if isinstance(said, str) else machine.speed_source
        machines.append(machine)
    reference = data.get("reference_machine")
    return machines, reference if reference in entries else None


def _machine(m, hardware: dict | None = None) -> Machine:
    watts = m.dynamic_watts_per_core if m.busy_watts > m.idle_watts else None
    return Machine(m.id, m.speed, m.gpus, m.fpgas, hardware, watts)


def run_machine_speed(host: str | None, hardware: dict | None, built: Built) -> tuple[float, str]:
    """The speed of the machine a task ran on, relative to the platform's reference, and how it is known."""
    by_id = {m.id: m for m in built.machines}
    if host in by_id:
        machine = by_id[host]
        return machine.speed, f"runtime x {machine.speed:.4g}, the speed of {host} ({machine.speed_source})"
    reference = by_id.get(built.reference) if built.reference else None
    mhz = (hardware or {}).get("cpu_speed_mhz")
    ref_mhz = ((reference.hardware or {}) if reference else {}).get("cpu_speed_mhz")
    if mhz and ref_mhz:
        speed = reference.speed * mhz / ref_mhz
        return speed, f"runtime x {speed:.4g}: {host}'s nominal CPU MHz over the reference {reference.id}'s"
    where = "an unknown machine" if host is None else f"{host}, not in the platform"
    return 1.0, f"runtime x 1.0 (assumed: the task ran on {where}, speed unknown)"


# ------------------------------------------------------------------------------------------------ models


def _check_model(loaded, target: str) -> None:
    card, folder = loaded.card, loaded.folder
    training = card.get("training", {})
    wanted = (RUNTIME,) if target == RUNTIME else (ENERGY, ENERGY_BASIS)
    if card.get("target") not in wanted:
        raise ValueError(f"{folder}: predicts {card.get('target')!r}, not {target}")
    if training.get("kind") != "dataset":
        raise ValueError(f"{folder}: trained on a plain table; predicting needs `jouletrace train --dataset`")
    if training.get("mode", "before-run") != "before-run":
        raise ValueError(
            f"{folder}: trained {training.get('mode')}; predicting other machines needs before-run"
        )
    if target == ENERGY and card.get("target") == ENERGY and card.get("energy_basis") != ENERGY_BASIS:
        raise ValueError(
            f"{folder}: predicts energy_joules with the idle share the attribution gave each task; WF.json "
            "energies are above idle: use a model saved by `jouletrace workflow --dataset D --save-models "
            "DIR` (trained on dynamic_joules)"
        )


def _label(loaded, where: str) -> str:
    metrics = loaded.card.get("metrics", {})
    mape = metrics.get("mape")
    held_out = f" (held-out MAPE {mape:.0%})" if isinstance(mape, int | float) and math.isfinite(mape) else ""
    return f"{loaded.card.get('model')} {where}{held_out}"


def load_models(models: Mapping[str, object] | None) -> dict[str, Model]:
    """Model folders (or LoadedModel objects) by target, checked to be usable here."""
    given = {target: value for target, value in (models or {}).items() if value is not None}
    if not given:
        return {}
    from models.store import LoadedModel, load_model

    out = {}
    for target, value in given.items():
        if target not in (RUNTIME, ENERGY):
            raise ValueError(f"models: {target!r} is not {RUNTIME} or {ENERGY}")
        loaded = value if isinstance(value, LoadedModel) else load_model(value)
        _check_model(loaded, target)
        out[target] = Model(loaded, _label(loaded, f"model {loaded.folder}"))
    return out


def train_models(
    tables: dict[str, pd.DataFrame],
    source: str,
    targets: tuple[str, ...] = (RUNTIME, ENERGY),
    progress: Progress | None = None,
    save_dir: str | Path | None = None,
) -> dict[str, Model]:
    """Train the runtime and dynamic-energy regressors on a dataset's tables (saved under save_dir/<target>
    when given, else in a temporary folder)."""
    from models.api import train_dataset_tables
    from models.errors import ModelInputError
    from models.options import TrainOptions
    from models.store import CARD_FILE, load_model

    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        for target in targets:
            use = dict(tables)
            if target == ENERGY:
                energy = tables.get("task_energy")
                if energy is None or energy.empty:
                    continue
                energy = energy[energy["device_kind"].isin(ADDITIVE_DEVICE_KINDS)].copy()
                energy["energy_joules"] = energy["dynamic_joules"]
                use["task_energy"] = energy
            folder = Path(save_dir or scratch) / target
            if progress:
                progress(f"training the {target} regressor on {source}")
            options = TrainOptions(target=target, model=IN_PROCESS_MODEL, seed=0)
            try:
                train_dataset_tables(use, options, folder, source, progress=progress, evaluate=False)
            except ModelInputError as exc:
                raise ValueError(f"training the {target} regressor in-process: {exc}") from None
            if target == ENERGY:
                card = json.loads((folder / CARD_FILE).read_text())
                card["energy_basis"] = ENERGY_BASIS
                (folder / CARD_FILE).write_text(json.dumps(card, indent=2, default=str) + "\n")
            loaded = load_model(folder)
            where = f"model {folder}" if save_dir else f"trained in-process on {source}"
            out[target] = Model(loaded, _label(loaded, where))
    return out


def _machine_table(hardware: dict[str, dict]) -> pd.DataFrame:
    """A machines table (the columns the regressors read) of hardware descriptions."""
    columns = ("cpu_model", "sockets", "cores", "cpu_speed_mhz", "memory_bytes", "gpu_models", "fpga_models")
    rows = [{"host_node": host} | {c: hw.get(c) for c in columns} for host, hw in hardware.items()]
    frame = pd.DataFrame(rows, columns=["host_node", *columns])
    for column in ("gpu_models", "fpga_models"):
        frame[column] = [v if isinstance(v, list) else [] for v in frame[column]]
    return frame


def predict(
    models: dict[str, Model], tables: dict[str, pd.DataFrame], built: Built
) -> dict[str, dict[tuple[str, str], float]]:
    """Per target: the prediction of every (task id, machine id) the models can say, run machines included."""
    hardware = {m.id: m.hardware for m in built.machines if m.hardware}
    hardware |= {host: hw for host, hw in built.run_hardware.items() if hw and host not in hardware}
    if not models or not hardware:
        return {}
    from models.api import predict_on_machines
    from models.features import build_training_table

    ids = {r.id for r in built.runs}
    rows = build_training_table(tables, RUNTIME, "before-run").frame
    rows = rows[rows["task_id"].isin(ids)]
    if rows.empty:
        return {}
    machines = _machine_table(hardware)
    out: dict[str, dict[tuple[str, str], float]] = {}
    for target, model in models.items():
        frame = rows if target == RUNTIME else _device_rows(rows)
        predicted = predict_on_machines(model.loaded, frame, machines)
        column = f"{model.loaded.card['target']}_predicted"
        sums = predicted.groupby(["task_id", "host_node"])[column].sum()
        out[target] = {(str(t), str(h)): float(v) for (t, h), v in sums.items()}
    return out


def _device_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The per-device-kind rows of an energy regressor for tasks: CPU zones, and the GPUs/FPGAs held."""
    parts = []
    for kind, count in (("cpu_package", None), ("dram", None), ("gpu", "gpu_count"), ("fpga", "fpga_count")):
        part = rows if count is None else rows[rows[count].fillna(0) > 0]
        part = part.copy()
        part["device_kind"] = kind
        part["devices_held"] = 1.0 if count is None else part[count].astype("float64")
        part["task_device_type"] = part["task_template"].fillna("(none)") + "/" + kind
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------------------ assembly


def assemble(built: Built, predictions: dict[str, dict[tuple[str, str], float]], models: dict[str, Model]):
    """The Workflow: measured numbers where tasks ran, predicted (or work/speed, scaled) ones elsewhere."""
    tasks = {}
    by_id = {m.id: m for m in built.machines}
    hosts = {r.host for r in built.runs}
    speeds = {h: run_machine_speed(h, built.run_hardware.get(h or ""), built) for h in hosts}
    for run in built.runs:
        speed, how = speeds[run.host]
        work = run.runtime * speed
        runtime: dict[str, float] = {}
        energy: dict[str, float] = {}
        ran_on = run.host or "(unknown machine)"
        sources: dict[str, dict[str, str]] = {RUNTIME: {}, ENERGY: {}, "work_seconds": {ran_on: how}}
        if run.host is not None:
            runtime[run.host], sources[RUNTIME][run.host] = run.runtime, run.runtime_source
            if run.energy is not None:
                energy[run.host], sources[ENERGY][run.host] = run.energy, run.energy_source
        for machine in built.machines:
            if machine.id == run.host or not machine.has(run.device):
                continue
            for target, measured, into in ((RUNTIME, run.runtime, runtime), (ENERGY, run.energy, energy)):
                value = _predicted(predictions.get(target, {}), run, machine.id, measured)
                if value is not None:
                    into[machine.id] = value[0]
                    sources[target][machine.id] = f"predicted: {models[target].label}{value[1]}"
            if machine.id not in runtime:
                runtime[machine.id] = work / machine.speed
                sources[RUNTIME][machine.id] = WORK_OVER_SPEED
            if machine.id not in energy:
                scaled = _scaled_energy(run, by_id.get(run.host or ""), machine, runtime[machine.id])
                if scaled is not None:
                    energy[machine.id], sources[ENERGY][machine.id] = scaled
        tasks[run.id] = Task(
            run.id,
            work,
            0.0,
            runtime_seconds=runtime,
            energy_joules=energy,
            device=run.device,
            sources={k: v for k, v in sources.items() if v},
        )
    edges = [Edge(u, v, float(size)) for u, v, size in built.edges]
    return Workflow(built.name, tasks, edges)


def _scaled_energy(
    run: Run, ran_on: Machine | None, machine: Machine, seconds: float
) -> tuple[float, str] | None:
    """The energy measured where the task ran, carried to ``machine``: x the runtime ratio, and its CPU part
    x the ratio of the two machines' dynamic watts per busy core (the platform's fitted power)."""
    if run.energy is None or ran_on is None or not ran_on.watts_per_core or not machine.watts_per_core:
        return None
    if run.runtime <= 0:
        return None
    ratio = seconds / run.runtime
    cpu = (run.energy - run.accelerator_energy) * machine.watts_per_core / ran_on.watts_per_core
    value = max((cpu + run.accelerator_energy) * ratio, 0.0)
    return value, f"{SCALED} on {run.host} x runtime ratio x dynamic watts per core ratio (platform)"


def _predicted(
    values: dict[tuple[str, str], float], run: Run, machine: str, measured: float | None
) -> tuple[float, str] | None:
    here = values.get((run.id, machine))
    if here is None or not math.isfinite(here):
        return None
    there = values.get((run.id, run.host or ""))
    if measured is not None and there is not None and there > 0:
        return max(measured * here / there, 0.0), f"; scaled to the run on {run.host}"
    return max(here, 0.0), ""


def bridge(
    kept: set[str], parents: dict[str, set[str]], sizes: Callable[[str, str], float]
) -> list[tuple[str, str, float]]:
    """Edges among kept tasks: a task left out passes its parents on to its children (data 0 across it)."""
    edges: dict[tuple[str, str], float] = {}
    for task in kept:
        for up in parents.get(task, ()):
            if up in kept:
                edges[up, task] = sizes(up, task)
                continue
            seen, stack = {up}, [up]
            while stack:
                for above in parents.get(stack.pop(), ()):
                    if above in kept:
                        edges.setdefault((above, task), 0.0)
                    elif above not in seen:
                        seen.add(above)
                        stack.append(above)
    return sorted((u, v, size) for (u, v), size in edges.items())


# ------------------------------------------------------------------------------------------------ dataset


def _read_dataset(root: Path, workflow_uid: str) -> dict[str, pd.DataFrame]:
    import pyarrow.dataset as ds

    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such trace dataset folder")
    workflows = read_table(root, "workflows").to_pandas()
    if workflow_uid not in set(workflows["workflow_uid"]):
        known = ", ".join(sorted(workflows["workflow_uid"].astype(str))[:5])
        more = ", ..." if len(workflows) > 5 else ""
        raise ValueError(
            f"{root / 'workflows'}: no workflow_uid {workflow_uid!r} (the dataset has {len(workflows)}: "
            f"{known}{more})"
        )
    tables = {"workflows": workflows, "tasks": read_table(root, "tasks").to_pandas()}
    tables["machines"] = read_table(root, "machines").to_pandas()
    try:
        where = ds.field("workflow_uid") == workflow_uid
        tables["task_energy"] = read_table(root, "task_energy", where).to_pandas()
    except FileNotFoundError:
        pass
    return tables


def _logical_tasks(tasks: pd.DataFrame) -> dict[str, str]:
    """Attempt task_id -> the task_id of its logical task's first attempt. Attempt k > 0 continues an
    attempt k - 1 of the same name and parents that did not succeed; every attempt 0 is a task of its own
    (two tasks may share a name, as the lanes of a nested DAG do)."""
    logical: dict[str, str] = {}
    open_: dict[tuple, list[str]] = {}
    for row in tasks.sort_values(["attempt", "task_id"]).itertuples():
        key = (row.task_name, tuple(sorted(row.parents if row.parents is not None else ())))
        waiting = open_.get(key)
        root = waiting.pop(0) if row.attempt > 0 and waiting else str(row.task_id)
        logical[str(row.task_id)] = root
        if row.phase != "Succeeded":
            open_.setdefault(key, []).append(root)
    return logical


def trace_runs(
    tasks: pd.DataFrame,
    energy: pd.DataFrame | None,
    imported: bool = False,
    sizes: Callable[[str, str], float] | None = None,
) -> tuple[list[Run], list[tuple[str, str, float]]]:
    """The logical tasks of one workflow's ``tasks`` rows, the attempt kept for each, and the edges among
    them (``sizes`` gives an edge's bytes; default the parent's written bytes shared over its children)."""
    logical = _logical_tasks(tasks)
    rows = tasks.assign(root_id=tasks["task_id"].astype(str).map(logical)).sort_values(["attempt", "task_id"])
    chosen = {}
    for root, attempts in rows.groupby("root_id", sort=False):
        ran = attempts[attempts["runtime_seconds"].notna() & ~attempts["phase"].isin(NEVER_RAN)]
        succeeded = ran[ran["phase"] == "Succeeded"]
        if len(ran):
            chosen[root] = (succeeded if len(succeeded) else ran).iloc[-1]
    name = {root: str(chosen[root]["task_id"]) if root in chosen else root for root in set(logical.values())}
    parents: dict[str, set[str]] = {}
    for row in rows.itertuples():
        ups = row.parents if row.parents is not None else ()
        parents.setdefault(name[row.root_id], set()).update(name[logical[p]] for p in ups if p in logical)
    fan_out: dict[str, int] = {}
    for ups in parents.values():
        for up in ups:
            fan_out[up] = fan_out.get(up, 0) + 1
    by_task = dict(iter(energy.groupby("task_id"))) if energy is not None and len(energy) else {}
    written, runs = {}, []
    for root, row in chosen.items():
        runs.append(_run(row, by_task.get(row["task_id"]), imported))
        if not pd.isna(row["written_bytes"]) and fan_out.get(name[root]):
            written[name[root]] = float(row["written_bytes"]) / fan_out[name[root]]
    return runs, bridge({r.id for r in runs}, parents, sizes or (lambda u, v: written.get(u, 0.0)))


def _run(row: pd.Series, energy: pd.DataFrame | None, imported: bool) -> Run:
    gpus = row["gpu_ids"] if row["gpu_ids"] is not None else ()
    fpgas = row["fpga_ids"] if row["fpga_ids"] is not None else ()
    device = "gpu" if len(gpus) else "fpga" if len(fpgas) else "cpu"
    source = "imported" if imported else str(row["provenance"])
    if row["phase"] in UNFINISHED_PHASES:
        source += f" ({row['phase']} attempt: no attempt succeeded)"
    host = None if row["host_node"] is None or pd.isna(row["host_node"]) else str(row["host_node"])
    run = Run(str(row["task_id"]), host, float(row["runtime_seconds"]), source, device)
    if energy is None:
        return run
    additive = energy[energy["device_kind"].isin(ADDITIVE_DEVICE_KINDS)]
    if len(additive):
        run.energy = float(additive["dynamic_joules"].sum())
        devices = additive["device_kind"].isin(("gpu", "fpga"))
        run.accelerator_energy = float(additive.loc[devices, "dynamic_joules"].sum())
        run.energy_source = "+".join(sorted({str(v) for v in additive["provenance"].dropna()})) or "unknown"
        if imported:
            run.energy_source = f"imported ({run.energy_source} per-device dynamic joules)"
        coverage = float(additive["coverage"].min())
        if coverage < 0.95:
            run.energy_source += f" (readings covered {coverage:.0%} of the task)"
    elif imported and len(energy):
        run.energy = float(energy["dynamic_joules"].sum())
        run.energy_source = "imported: energyInKWh (whole-task energy, its idle share not separated)"
    return run


def workflow_from_dataset(
    root: str | Path,
    workflow_uid: str,
    platform: Platform | Mapping | str | Path | None = None,
    models: Mapping[str, object] | None = None,
    train: bool = False,
    progress: Progress | None = None,
    save_models: str | Path | None = None,
) -> Workflow:
    """One run of a trace dataset as a WF.json workflow (module docstring); ``train`` False falls back on
    work/speed for numbers no given model predicts."""
    root = Path(root)
    tables = _read_dataset(root, workflow_uid)
    machines, reference = platform_machines(platform_from_dataset(root) if platform is None else platform)
    rows = tables["tasks"][tables["tasks"]["workflow_uid"] == workflow_uid]
    runs, edges = trace_runs(rows, tables.get("task_energy"))
    if not runs:
        raise ValueError(f"{root / 'tasks'}: workflow {workflow_uid!r} has no task that ran")
    names = tables["workflows"].set_index("workflow_uid")["workflow_name"]
    hardware = {str(r.host_node): hardware_of(r) for r in tables["machines"].itertuples()}
    built = Built(str(names[workflow_uid]), runs, edges, machines, reference, hardware)
    loaded = load_models(models)
    missing = tuple(t for t in (RUNTIME, ENERGY) if t not in loaded)
    if missing and (train or save_models):
        from models.tables import read_trace_dataset

        full = read_trace_dataset(root)
        loaded |= train_models(full, str(root), missing, progress, save_models)
    return assemble(built, predict(loaded, tables, built), loaded)


# ------------------------------------------------------------------------------------------------ WfFormat


def workflow_from_wfformat(
    path: str | Path,
    platform: Platform | Mapping | str | Path | None = None,
    models: Mapping[str, object] | None = None,
) -> Workflow:
    """A WfFormat (WfCommons) run as a WF.json workflow: runtimes imported; energy only if the file has it."""
    from datasets.formats.wfformat_read import wfformat_to_tables
    from schemas.formats import LEGACY_VERSIONS, FormatError, read_json, upgrade_wfformat

    path = Path(path)
    doc = read_json(path)
    try:
        result = wfformat_to_tables(doc, str(path), default_uid=path.stem)
    except FormatError as exc:
        first = exc.findings[0] if exc.findings else exc
        more = f" (and {len(exc.findings) - 1} more)" if len(exc.findings) > 1 else ""
        raise ValueError(f"not a WfFormat file: {first}{more}") from None
    if doc.get("schemaVersion") in LEGACY_VERSIONS:
        doc = upgrade_wfformat(doc)
    tables = {name: table.to_pandas() for name, table in result.tables.items()}
    runs, edges = trace_runs(tables["tasks"], tables["task_energy"], True, _file_sizes(doc, tables["tasks"]))
    hardware = {str(r.host_node): hardware_of(r) for r in tables["machines"].itertuples()}
    if platform is None:
        machines, reference = _file_machines(tables, hardware)
    else:
        machines, reference = platform_machines(platform)
    built = Built(str(doc.get("name") or path.stem), runs, edges, machines, reference, hardware)
    loaded = load_models(models)
    return assemble(built, predict(loaded, tables, built), loaded)


def _file_machines(
    tables: dict[str, pd.DataFrame], hardware: dict[str, dict]
) -> tuple[list[Machine], str | None]:
    """A file's own machines: the one that ran the most tasks is the reference; the others' speed is their
    nominal CPU MHz over its (1.0 when either is unknown)."""
    counts = tables["tasks"]["host_node"].value_counts()
    if not hardware:
        return [], None
    reference = max(hardware, key=lambda h: (counts.get(h, 0), h))
    ref_mhz = hardware[reference].get("cpu_speed_mhz")
    machines = []
    for host, hw in hardware.items():
        mhz = hw.get("cpu_speed_mhz")
        if host == reference:
            speed, how = 1.0, "reference: the file's machine that ran the most tasks"
        elif mhz and ref_mhz:
            speed, how = mhz / ref_mhz, f"its speedInMHz over {reference}'s"
        else:
            speed, how = 1.0, f"assumed: no speedInMHz for it or {reference}"
        machines.append(Machine(host, speed, len(hw["gpu_models"]), len(hw["fpga_models"]), hw, None, how))
    return machines, reference


def _file_sizes(doc: Mapping, tasks: pd.DataFrame) -> Callable[[str, str], float]:
    """Bytes of an edge of a WfFormat run: the sizes of the files the child reads that the parent writes."""
    spec = doc["workflow"]["specification"]
    files = [f for f in spec.get("files", []) if isinstance(f, Mapping)]
    sizes = {f["id"]: float(f.get("sizeInBytes") or 0.0) for f in files}
    outputs = {t["id"]: set(t.get("outputFiles") or ()) for t in spec["tasks"]}
    inputs = {t["id"]: set(t.get("inputFiles") or ()) for t in spec["tasks"]}
    spec_id = dict(zip(tasks["task_id"], [t["id"] for t in spec["tasks"]], strict=True))

    def data(u: str, v: str) -> float:
        read = outputs.get(spec_id[u], set()) & inputs.get(spec_id[v], set())
        return math.fsum(sizes.get(f, 0.0) for f in read)

    return data
