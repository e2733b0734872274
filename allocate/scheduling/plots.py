"""Plots of a scheduling evaluation: Pareto fronts, energy saved, and the makespan paid for it (PNG)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_PANELS = 12


def _save(figure: Figure, path: Path) -> Path:
    from datasets.store import write_bytes_atomic

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return write_bytes_atomic(buffer.getvalue(), path)


def _panel_workflows(results: pd.DataFrame) -> list[str]:
    """Up to MAX_PANELS workflows, spread over the families."""
    per_family = results.groupby("family")["workflow"].unique()
    chosen: list[str] = []
    depth = 0
    while len(chosen) < MAX_PANELS and any(depth < len(w) for w in per_family):
        chosen += [w[depth] for w in per_family if depth < len(w)]
        depth += 1
    return chosen[:MAX_PANELS]


def plot_pareto_fronts(results: pd.DataFrame, path: Path) -> Path:
    """Makespan against energy, both relative to HEFT, one panel per workflow; the front as a line."""
    workflows = _panel_workflows(results)
    columns = min(4, len(workflows))
    rows = math.ceil(len(workflows) / columns)
    figure = Figure(figsize=(3.6 * columns, 3.0 * rows))
    for k, name in enumerate(workflows):
        ax = figure.add_subplot(rows, columns, k + 1)
        g = results[results["workflow"] == name]
        for algorithm, points in g.groupby("algorithm"):
            ax.scatter(points["makespan_vs_heft"], points["energy_vs_heft"], s=14, label=algorithm)
        front = g[g["on_pareto_front"]].sort_values("makespan_vs_heft")
        ax.plot(front["makespan_vs_heft"], front["energy_vs_heft"], color="black", linewidth=0.8)
        ax.axvline(1.05, color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(f"{name} ({int(g['tasks'].iloc[0])} tasks)", fontsize=8)
        ax.set_xlabel("makespan / HEFT's", fontsize=7)
        ax.set_ylabel("energy / HEFT's", fontsize=7)
        ax.tick_params(labelsize=7)
    handles = {}
    for ax in figure.axes:
        handles.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    figure.suptitle(
        "Schedules relative to HEFT (line: Pareto front; dotted: 5% longer makespan)", fontsize=10
    )
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    figure.legend(
        list(handles.values()),
        list(handles),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.965),
        ncol=min(8, len(handles)),
        fontsize=7,
    )
    return _save(figure, path)


def plot_energy_saved(table: pd.DataFrame, path: Path) -> Path:
    """Per family: median energy saved against HEFT at equal makespan and within 5% longer makespan."""
    figure = Figure(figsize=(max(5.0, 1.1 * len(table) + 2), 3.6))
    ax = figure.add_subplot()
    x = range(len(table))
    ax.bar(
        [i - 0.2 for i in x], 100 * table["saved_at_equal_makespan"], width=0.4, label="makespan <= HEFT's"
    )
    ax.bar(
        [i + 0.2 for i in x], 100 * table["saved_within_5pct"], width=0.4, label="makespan <= 1.05 x HEFT's"
    )
    ax.axhline(15, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xticks(list(x), table["family"], rotation=30, ha="right")
    ax.set_ylabel("energy saved vs HEFT (%, median)")
    ax.legend(fontsize=8)
    ax.set_title("Energy saved against HEFT")
    figure.tight_layout()
    return _save(figure, path)


def plot_price_of_saving(results: pd.DataFrame, path: Path) -> Path:
    """Every Pareto-front schedule: energy saved (%) against the makespan it adds (%), by family."""
    figure = Figure(figsize=(6.0, 4.2))
    ax = figure.add_subplot()
    front = results[results["on_pareto_front"]]
    for family, points in front.groupby("family"):
        ax.scatter(
            100 * (1 - points["energy_vs_heft"]), 100 * (points["makespan_vs_heft"] - 1), s=12, label=family
        )
    ax.axhline(5, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("energy saved vs HEFT (%)")
    ax.set_ylabel("makespan added vs HEFT (%)")
    ax.set_yscale("symlog", linthresh=10)
    ax.legend(fontsize=7)
    ax.set_title("Makespan paid for the energy saved (Pareto fronts)")
    figure.tight_layout()
    return _save(figure, path)
