"""Plots of the policy: its learning curve, and its trade-offs against the online baselines (PNG)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from allocate.scheduling.plots import _save

FIXED = ("heft-static", "heft-dynamic", "min-energy", "ecs", "random")


def learning_curve_png(curve: list[dict], path):
    """Episode rewards (and their running mean) and the held-out ratio against training steps."""
    figure = Figure(figsize=(10, 3.6))
    left, right = figure.subplots(1, 2)
    episodes = [c for c in curve if "reward" in c]
    held = [c for c in curve if "held_out_ratio" in c]
    if episodes:
        steps = np.array([c["timesteps"] for c in episodes])
        reward = np.array([c["reward"] for c in episodes])
        window = max(1, len(reward) // 30)
        left.plot(steps, reward, ".", alpha=0.2, label="episode")
        left.plot(
            steps[window - 1 :],
            np.convolve(reward, np.ones(window) / window, "valid"),
            label=f"mean of {window}",
        )
        left.legend()
    left.set(xlabel="environment steps", ylabel="episode reward (-objective)", title="training reward")
    if held:
        right.plot([c["timesteps"] for c in held], [c["held_out_ratio"] for c in held], "o-")
    right.axhline(1.0, color="grey", lw=0.8)
    right.set(xlabel="environment steps", ylabel="makespan / dynamic HEFT (w = 1)", title="held-out")
    figure.tight_layout()
    return _save(figure, path)


def tradeoffs_png(table: pd.DataFrame, path):
    """Per set and noise: geometric-mean makespan and energy relative to dynamic HEFT; the policy and the
    weighted rule as a line over w, the other baselines as points (lower left is better)."""
    groups = list(table.groupby(["set", "noise"]))
    figure = Figure(figsize=(4.2 * max(len(groups), 1), 3.8))
    axes = np.atleast_1d(figure.subplots(1, max(len(groups), 1)))
    for ax, ((set_name, noise), group) in zip(axes, groups, strict=False):
        for name, style in (("policy", "o-"), ("weighted", "s--")):
            line = group[group["scheduler"] == name].sort_values("weight")
            ax.plot(line["makespan_vs_dynamic_heft"], line["energy_vs_dynamic_heft"], style, label=name)
            for _, row in line.iterrows():
                ax.annotate(
                    f"w={row['weight']:g}",
                    (row["makespan_vs_dynamic_heft"], row["energy_vs_dynamic_heft"]),
                    fontsize=7,
                )
        points = group[group["scheduler"].isin(FIXED)].drop_duplicates("scheduler")
        for _, row in points.iterrows():
            ax.plot(
                row["makespan_vs_dynamic_heft"], row["energy_vs_dynamic_heft"], "x", label=row["scheduler"]
            )
        ax.set_xscale("log")
        ax.set(
            xlabel="makespan / dynamic HEFT",
            ylabel="energy / dynamic HEFT",
            title=f"{set_name}, noise {noise}",
        )
        ax.legend(fontsize=7)
    figure.tight_layout()
    return _save(figure, path)
