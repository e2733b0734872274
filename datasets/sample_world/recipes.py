"""Recipes: small generators of the shapes of well-known scientific workflows.

The shapes follow the published structure of the Pegasus / WfCommons workflows (levels with fan-out
and fan-in); widths are drawn from the seeded generator so that no two runs of an app look the same.

A task type's median runtime is its runtime on a Gold 6346 core (cluster.py) at its reference fan-in. Two
effects change it, both documented on `TaskType`: aggregators (mConcatFit, mImgtbl, mapMerge,
individuals-merge, cat-blast, cat, merge-bam, train) take longer the more upstream tasks they merge
(`median_runtime_at`, used by plan.py), and the part of a task that is CPU-bound runs slower on slower cores
(`slowdown`, used by scheduler.py); I/O-bound types (splitting, concatenating, format conversion) and
accelerator-bound ones (train, evaluate on GPUs, align on the FPGA) are CPU-bound for only ~30% of their time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TaskType:
    """What one template's tasks ask for, how long they run, how much power their CPU and device use draws."""

    template: str
    image: str
    command: str
    cpu_request_cores: float
    memory_request_gib: float
    median_runtime_seconds: float
    runtime_sigma: float
    # Dynamic power per CPU-second per second of use: watts when the task keeps one core busy.
    cpu_joules_per_cpu_second: float
    dram_joules_per_cpu_second: float
    gpus: int = 0
    fpgas: int = 0
    # A GPU's dynamic power is watts per busy-second x the busy seconds per second (SM activity) the task
    # gets on it; alone a task keeps each of its GPUs busy at a fraction drawn from this range.
    gpu_watts_per_busy_second: float = 0.0
    gpu_busy_fraction: tuple[float, float] = (0.0, 0.0)
    fpga_dynamic_watts: tuple[float, float] = (0.0, 0.0)
    # Share f of the runtime that scales with per-core CPU speed; the rest (I/O, accelerator) does not.
    cpu_bound_fraction: float = 0.85
    # Median runtime x (fan_in / reference_fan_in) ** fan_in_exponent: aggregators' work grows with inputs.
    fan_in_exponent: float = 0.0
    reference_fan_in: int = 1

    def median_runtime_at(self, fan_in: int) -> float:
        """The median runtime of a task of this type waiting on `fan_in` upstream pods (counted as at least
        1): the type's median x (fan_in / reference_fan_in) ** fan_in_exponent."""
        return self.median_runtime_seconds * (max(fan_in, 1) / self.reference_fan_in) ** self.fan_in_exponent

    def slowdown(self, relative_throughput: float) -> float:
        """How many times longer than on a Gold 6346 core the task runs on cores of `relative_throughput`:
        f / relative_throughput + (1 - f), f the cpu_bound_fraction (1 on the reference CPU)."""
        f = self.cpu_bound_fraction
        return f / relative_throughput + (1.0 - f)


@dataclass(frozen=True)
class Call:
    """A DAG task or a step: its name, the template it runs, and the sibling calls it waits for."""

    name: str
    template: str
    depends: tuple[str, ...] = ()


@dataclass(frozen=True)
class DagTemplate:
    name: str
    tasks: tuple[Call, ...]


@dataclass(frozen=True)
class StepsTemplate:
    name: str
    groups: tuple[tuple[Call, ...], ...]


@dataclass(frozen=True)
class Recipe:
    """One workflow's templates; `composites` holds the DAG/Steps templates, the entrypoint among them."""

    app: str
    entrypoint: str
    composites: dict[str, DagTemplate | StepsTemplate]
    task_types: dict[str, TaskType]


def _types(app: str, version: str, rows: tuple[tuple, ...]) -> dict[str, TaskType]:
    image = f"ghcr.io/sample-world/{app}:{version}"
    return {
        row[0]: TaskType(row[0], image, row[1], *row[2:8], **(row[8] if len(row) > 8 else {})) for row in rows
    }


def _gpu(watts_per_busy_second: float, busy_fraction: tuple[float, float]) -> dict:
    return {"gpus": 1, "gpu_watts_per_busy_second": watts_per_busy_second, "gpu_busy_fraction": busy_fraction}


def _fpga(dynamic_watts: tuple[float, float]) -> dict:
    return {"fpgas": 1, "fpga_dynamic_watts": dynamic_watts}


def _merges(reference_fan_in: int, exponent: float) -> dict:
    """An aggregator: runtime median x (fan-in / reference_fan_in) ** exponent."""
    return {"reference_fan_in": reference_fan_in, "fan_in_exponent": exponent}


# I/O-bound (split, concatenate, convert) or accelerator-bound: ~30% of the runtime scales with the CPU.
_IO = {"cpu_bound_fraction": 0.3}
_OFFLOADED = {"cpu_bound_fraction": 0.3}

# template, command, cpu cores, memory GiB, median runtime s (on a Gold 6346, at the reference fan-in), sigma,
# CPU J/CPU-s (on a Gold 6346), DRAM J/CPU-s [, other fields of TaskType]
_MONTAGE = (
    ("mproject", "mProject", 1, 2, 75, 0.35, 9.2, 1.1),
    ("mdifffit", "mDiffFit", 1, 1, 24, 0.45, 8.4, 0.9),
    ("mconcatfit", "mConcatFit", 1, 2, 28, 0.3, 8.0, 1.0, _merges(20, 0.7)),
    ("mbgmodel", "mBgModel", 2, 4, 110, 0.3, 8.8, 1.2),
    ("mbackground", "mBackground", 1, 1, 18, 0.5, 8.1, 0.9),
    ("mimgtbl", "mImgtbl", 1, 1, 22, 0.3, 7.8, 0.9, _merges(12, 0.8) | _IO),
    ("madd", "mAdd", 4, 16, 260, 0.3, 9.6, 1.5),
    ("mviewer", "mViewer", 2, 4, 45, 0.3, 8.5, 1.0),
)
_EPIGENOMICS = (
    ("fastqsplit", "fastqSplit", 1, 2, 55, 0.3, 8.2, 1.3, _IO),
    ("filtercontams", "filterContams", 1, 2, 24, 0.35, 8.6, 1.0),
    ("sol2sanger", "sol2sanger", 0.5, 1, 6, 0.4, 7.9, 0.9, _IO),
    ("fast2bfq", "fast2bfq", 1, 1, 21, 0.4, 8.0, 1.0),
    ("map", "maq-map", 4, 8, 320, 0.35, 10.1, 1.4),
    ("mapmerge", "mapMerge", 2, 4, 70, 0.3, 8.3, 1.3, _merges(3, 0.6)),
    ("maqindex", "maqIndex", 2, 8, 140, 0.3, 8.7, 1.5),
    ("pileup", "pileup", 2, 8, 210, 0.3, 9.0, 1.4),
)
_BLAST = (
    ("split-fasta", "split_fasta", 1, 1, 18, 0.3, 8.0, 0.9, _IO),
    ("blastall", "blastall", 4, 8, 260, 0.45, 10.3, 1.2),
    ("cat-blast", "cat_blast", 1, 2, 14, 0.3, 7.6, 1.0, _merges(18, 0.8) | _IO),
    ("cat", "cat", 0.5, 0.5, 4, 0.3, 7.5, 0.8, _merges(18, 0.8) | _IO),
)
_GENOME = (
    ("individuals", "individuals.py", 2, 4, 420, 0.3, 9.4, 1.3),
    ("individuals-merge", "individuals_merge.py", 2, 8, 95, 0.3, 8.6, 1.6, _merges(10, 0.8)),
    ("sifting", "sifting.py", 1, 2, 35, 0.3, 8.2, 1.1),
    ("mutation-overlap", "mutation_overlap.py", 2, 4, 130, 0.35, 9.0, 1.2),
    ("frequency", "frequency.py", 4, 4, 210, 0.35, 9.8, 1.2),
)
_TRAIN = _gpu(245.0, (0.78, 0.96)) | _merges(6, 0.5) | _OFFLOADED
_ML = (
    ("preprocess", "preprocess.py", 4, 16, 95, 0.3, 9.1, 1.4),
    ("train", "train.py", 8, 64, 560, 0.25, 8.4, 1.2, _TRAIN),
    ("evaluate", "evaluate.py", 4, 32, 85, 0.3, 8.0, 1.1, _gpu(205.0, (0.72, 0.94)) | _OFFLOADED),
    ("report", "report.py", 0.5, 1, 9, 0.3, 7.5, 0.8),
)
_FPGA_ALIGN = (
    ("split-reads", "split_reads", 2, 4, 40, 0.3, 8.5, 1.2),
    ("align", "bwa-mem-fpga", 2, 8, 75, 0.3, 7.8, 1.1, _fpga((30.0, 60.0)) | _OFFLOADED),
    ("merge-bam", "samtools-merge", 4, 8, 110, 0.3, 9.0, 1.3, _merges(7, 0.7)),
    ("call-variants", "gatk-haplotypecaller", 4, 16, 150, 0.3, 9.5, 1.3),
)


def _recipe(app: str, version: str, rows: tuple, tasks: list[Call], *nested: DagTemplate) -> Recipe:
    entry = DagTemplate(app, tuple(tasks))
    return Recipe(app, app, {entry.name: entry, **{t.name: t for t in nested}}, _types(app, version, rows))


def montage(rng: np.random.Generator) -> Recipe:
    """Project N images, fit the overlaps, model and correct the background, co-add, render."""
    n = int(rng.integers(8, 19))
    tasks = [Call(f"mProject-{i}", "mproject") for i in range(n)]
    pairs = [(i, i + 1) for i in range(n - 1)] + [(i, i + 2) for i in range(0, n - 2, 2)]
    diffs = [
        Call(f"mDiffFit-{k}", "mdifffit", (f"mProject-{a}", f"mProject-{b}"))
        for k, (a, b) in enumerate(pairs)
    ]
    tasks += diffs
    tasks.append(Call("mConcatFit", "mconcatfit", tuple(c.name for c in diffs)))
    tasks.append(Call("mBgModel", "mbgmodel", ("mConcatFit",)))
    tasks += [Call(f"mBackground-{i}", "mbackground", ("mBgModel", f"mProject-{i}")) for i in range(n)]
    tasks.append(Call("mImgtbl", "mimgtbl", tuple(f"mBackground-{i}" for i in range(n))))
    tasks.append(Call("mAdd", "madd", ("mImgtbl",)))
    tasks.append(Call("mViewer", "mviewer", ("mAdd",)))
    return _recipe("montage", "6.0", _MONTAGE, tasks)


def epigenomics(rng: np.random.Generator) -> Recipe:
    """Split reads per lane, run each lane's chunk pipelines in a nested DAG, merge, index, pile up."""
    lanes, chunks = int(rng.integers(2, 5)), int(rng.integers(2, 6))
    lane: list[Call] = []
    for c in range(chunks):
        lane += [
            Call(f"filterContams-{c}", "filtercontams"),
            Call(f"sol2sanger-{c}", "sol2sanger", (f"filterContams-{c}",)),
            Call(f"fast2bfq-{c}", "fast2bfq", (f"sol2sanger-{c}",)),
            Call(f"map-{c}", "map", (f"fast2bfq-{c}",)),
        ]
    lane.append(Call("mapMerge", "mapmerge", tuple(f"map-{c}" for c in range(chunks))))
    tasks = [Call(f"fastqSplit-{i}", "fastqsplit") for i in range(lanes)]
    tasks += [Call(f"lane-{i}", "lane", (f"fastqSplit-{i}",)) for i in range(lanes)]
    tasks.append(Call("mapMerge", "mapmerge", tuple(f"lane-{i}" for i in range(lanes))))
    tasks.append(Call("maqIndex", "maqindex", ("mapMerge",)))
    tasks.append(Call("pileup", "pileup", ("maqIndex",)))
    return _recipe("epigenomics", "1.4", _EPIGENOMICS, tasks, DagTemplate("lane", tuple(lane)))


def blast(rng: np.random.Generator) -> Recipe:
    """Split the query, search every chunk, concatenate the hits."""
    n = int(rng.integers(10, 29))
    tasks = [Call("split-fasta", "split-fasta")]
    tasks += [Call(f"blastall-{i}", "blastall", ("split-fasta",)) for i in range(n)]
    searches = tuple(f"blastall-{i}" for i in range(n))
    tasks += [Call("cat-blast", "cat-blast", searches), Call("cat", "cat", searches)]
    return _recipe("blast", "2.2.26", _BLAST, tasks)


def genome(rng: np.random.Generator) -> Recipe:
    """1000 Genomes: per chromosome, parse individuals, merge, sift, then overlap/frequency per population."""
    chromosomes = rng.choice([20, 21, 22], size=int(rng.integers(1, 3)), replace=False)
    populations = rng.choice(["afr", "amr", "eas", "eur", "sas"], size=int(rng.integers(3, 6)), replace=False)
    tasks: list[Call] = []
    for chrom in sorted(int(c) for c in chromosomes):
        n = int(rng.integers(6, 15))
        tasks += [Call(f"individuals-c{chrom}-{i}", "individuals") for i in range(n)]
        merge, sift = f"individuals-merge-c{chrom}", f"sifting-c{chrom}"
        tasks.append(Call(merge, "individuals-merge", tuple(f"individuals-c{chrom}-{i}" for i in range(n))))
        tasks.append(Call(sift, "sifting"))
        for pop in populations:
            tasks.append(Call(f"mutation-overlap-c{chrom}-{pop}", "mutation-overlap", (merge, sift)))
            tasks.append(Call(f"frequency-c{chrom}-{pop}", "frequency", (merge, sift)))
    return _recipe("1000genome", "1.0", _GENOME, tasks)


def ml_training(rng: np.random.Generator) -> Recipe:
    """Preprocess shards on CPUs, train on one or two GPUs, evaluate on one GPU, write a report."""
    n = int(rng.integers(4, 9))
    tasks = [Call(f"preprocess-{i}", "preprocess") for i in range(n)]
    tasks.append(Call("train", "train", tuple(f"preprocess-{i}" for i in range(n))))
    tasks += [Call("evaluate", "evaluate", ("train",)), Call("report", "report", ("evaluate",))]
    recipe = _recipe("ml-training", "2.3-cuda12", _ML, tasks)
    train = dataclasses.replace(recipe.task_types["train"], gpus=int(rng.integers(1, 3)))
    return dataclasses.replace(recipe, task_types=recipe.task_types | {"train": train})


def fpga_align(rng: np.random.Generator) -> Recipe:
    """Split reads, align every chunk on the FPGA, merge the alignments, call variants."""
    n = int(rng.integers(4, 11))
    tasks = [Call("split-reads", "split-reads")]
    tasks += [Call(f"align-{i}", "align", ("split-reads",)) for i in range(n)]
    tasks.append(Call("merge-bam", "merge-bam", tuple(f"align-{i}" for i in range(n))))
    tasks.append(Call("call-variants", "call-variants", ("merge-bam",)))
    return _recipe("fpga-align", "2023.2", _FPGA_ALIGN, tasks)


RECIPES: tuple[tuple[str, Callable[[np.random.Generator], Recipe], float], ...] = (
    ("montage", montage, 5),
    ("epigenomics", epigenomics, 4),
    ("blast", blast, 4),
    ("1000genome", genome, 5),
    ("ml-training", ml_training, 3),
    ("fpga-align", fpga_align, 3),
)


def as_steps(recipe: Recipe) -> Recipe:
    """The same workflow written as a Steps template: one step group per level of its DAG."""
    dag = recipe.composites[recipe.entrypoint]
    level: dict[str, int] = {}
    for call in dag.tasks:
        level[call.name] = 1 + max((level[d] for d in call.depends), default=-1)
    groups = tuple(
        tuple(Call(c.name, c.template) for c in dag.tasks if level[c.name] == i)
        for i in range(max(level.values()) + 1)
    )
    steps = StepsTemplate(recipe.entrypoint, groups)
    return dataclasses.replace(recipe, composites={steps.name: steps})
