"""The scripts `jouletrace attribute` is timed against as whole processes (benchmarks/attribution.py), on the
same Parquet files.

    python benchmarks/attribution_scripts.py pandas TASKS SAMPLES OUT
    python benchmarks/attribution_scripts.py duckdb TASKS SAMPLES OUT [--threads N]

pandas: what a careful data scientist would write to split each node's metered energy among its tasks by
requested cores. It reads only the columns it needs (text as categoricals), unwraps each energy counter
(a negative step is one wrap of counter_max_joules), takes the counter's energy linear between readings
(np.interp over all series at once, each series shifted to its own stretch of the time axis), cuts each
series at its node's task edges, splits every piece among the tasks running by their requested cores (the
running cores found with merge_asof), and writes (task, device) joules. It does not separate idle from dynamic
energy, state uncertainty, handle gauges, resets or truncated times, nor close a balance: jouletrace does.

duckdb: DuckDB's ASOF join computing each task's counter energy over its window on each device of its node
(benchmarks/attribution_baselines.py, no split), read from and written to Parquet by DuckDB itself.

`compute_pandas` is also called in process by the benchmark, to time the computation alone; it takes the
frames `read_pandas` makes (times as int64 microseconds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

COUNTER = "energy_counter_joules"
TASK_COLUMNS = ["workflow_uid", "task_id", "host_node", "started_at", "finished_at", "cpu_request_cores"]
SAMPLE_COLUMNS = [
    "host_node",
    "device_kind",
    "device_id",
    "timestamp",
    "value",
    "value_kind",
    "counter_max_joules",
]


def read_pandas(tasks_path: str, samples_path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The columns the split needs; text columns as categoricals (Parquet's dictionaries kept)."""
    tasks = pq.read_table(tasks_path, columns=TASK_COLUMNS)
    text = ["host_node", "device_kind", "device_id", "value_kind"]
    samples = pq.read_table(samples_path, columns=SAMPLE_COLUMNS, read_dictionary=text)
    return as_frame(tasks), as_frame(samples)


def as_frame(table: pa.Table) -> pd.DataFrame:
    """`table` in pandas, times as int64 microseconds (pandas' tz-aware times leave numpy as objects)."""
    for name in ("timestamp", "started_at", "finished_at"):
        if name in table.column_names:
            index = table.column_names.index(name)
            table = table.set_column(index, name, table[name].cast(pa.int64()))
    return table.to_pandas()


def compute_pandas(tasks: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """(workflow_uid, task_id, host_node, device_kind, device_id, energy_joules): each node's counter
    energy split among its running tasks by requested cores."""
    readings = samples[samples["value_kind"] == COUNTER]
    series = readings.groupby(["host_node", "device_kind", "device_id"], observed=True, sort=False).ngroup()
    t_us = readings["timestamp"].to_numpy()
    order = np.lexsort((t_us, series.to_numpy()))
    series_of = series.to_numpy()[order]
    t_us = t_us[order]
    values = readings["value"].to_numpy()[order]
    wrap = readings["counter_max_joules"].fillna(0.0).to_numpy()[order]
    step = np.diff(values, prepend=values[:1])
    first = np.concatenate([[True], series_of[1:] != series_of[:-1]])
    step[first] = 0.0
    step = np.where(step < 0, step + wrap, step)
    cumulative = np.cumsum(step)
    cumulative -= np.repeat(cumulative[first], np.diff(np.append(np.flatnonzero(first), len(first))))

    devices = (
        readings[["host_node", "device_kind", "device_id"]]
        .assign(series=series)
        .drop_duplicates("series")
        .astype({"host_node": str, "device_kind": str, "device_id": str})
    )
    ran = tasks.dropna(subset=["host_node", "started_at", "finished_at"])
    start = ran["started_at"].to_numpy()
    end = ran["finished_at"].to_numpy()
    cores = ran["cpu_request_cores"].fillna(0.0).to_numpy()
    events = pd.DataFrame(
        {
            "host_node": np.concatenate([ran["host_node"].to_numpy()] * 2),
            "t_us": np.concatenate([start, end]),
            "cores": np.concatenate([cores, -cores]),
        }
    )
    steps = events.groupby(["host_node", "t_us"], sort=True)["cores"].sum().reset_index()
    steps["running"] = steps.groupby("host_node")["cores"].cumsum().clip(lower=0.0)
    # The task edges of each node on each of its series, and the requested cores running after each edge.
    grid = devices.merge(steps[["host_node", "t_us"]], on="host_node").sort_values(["t_us"], kind="stable")
    running = steps[["host_node", "t_us", "running"]].sort_values("t_us", kind="stable")
    grid = pd.merge_asof(grid, running, on="t_us", by="host_node", direction="backward")
    grid = grid.sort_values(["series", "t_us"], kind="stable").reset_index(drop=True)

    # One np.interp for every series: series k lives on its own stretch of the time axis.
    span = int(max(t_us.max(), grid["t_us"].max()) - min(t_us.min(), grid["t_us"].min())) + 1
    base = min(t_us.min(), grid["t_us"].min())
    reading_axis = series_of * float(span) + (t_us - base)
    grid_series = grid["series"].to_numpy()
    grid_axis = grid_series * float(span) + (grid["t_us"].to_numpy() - base)
    energy_at = np.interp(grid_axis, reading_axis, cumulative)
    # Readings of other series bracket a grid point outside its own series' readings: clamp to its own.
    first_reading = np.searchsorted(series_of, grid_series, side="left")
    last_reading = np.searchsorted(series_of, grid_series, side="right") - 1
    energy_at = np.where(grid_axis < reading_axis[first_reading], cumulative[first_reading], energy_at)
    energy_at = np.where(grid_axis > reading_axis[last_reading], cumulative[last_reading], energy_at)

    piece = np.diff(energy_at, append=energy_at[-1:])
    last_of_series = np.append(grid_series[1:] != grid_series[:-1], True)
    piece[last_of_series] = 0.0
    running_cores = grid["running"].to_numpy()
    price = np.divide(piece, running_cores, out=np.zeros_like(piece), where=running_cores > 0)
    grid["price_before"] = pd.Series(price).groupby(grid_series).cumsum().to_numpy() - price

    pairs = ran[["workflow_uid", "task_id", "host_node"]].assign(start_us=start, end_us=end, cores=cores)
    pairs = pairs.merge(devices, on="host_node")
    lookup = grid[["series", "t_us", "price_before"]]
    at_start = pairs.merge(lookup, left_on=["series", "start_us"], right_on=["series", "t_us"], how="left")
    at_end = pairs.merge(lookup, left_on=["series", "end_us"], right_on=["series", "t_us"], how="left")
    joules = pairs["cores"].to_numpy() * (
        at_end["price_before"].to_numpy() - at_start["price_before"].to_numpy()
    )
    return pairs[["workflow_uid", "task_id", "host_node", "device_kind", "device_id"]].assign(
        energy_joules=joules
    )


def run_pandas(tasks_path: str, samples_path: str, out: str) -> int:
    result = compute_pandas(*read_pandas(tasks_path, samples_path))
    pq.write_table(pa.Table.from_pandas(result, preserve_index=False), out)
    return len(result)


def run_duckdb(tasks_path: str, samples_path: str, out: str, threads: int | None) -> int:
    import duckdb
    from attribution_baselines import DUCKDB_SQL

    con = duckdb.connect()
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(f"CREATE VIEW samples AS SELECT * FROM read_parquet('{samples_path}')")
    con.execute(
        "CREATE VIEW tasks AS SELECT task_id, host_node, started_at, finished_at "
        f"FROM read_parquet('{tasks_path}')"
    )
    con.execute(f"COPY ({DUCKDB_SQL}) TO '{out}' (FORMAT parquet)")
    return int(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=["pandas", "duckdb"])
    parser.add_argument("tasks")
    parser.add_argument("samples")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, help="DuckDB's threads (default: its own, all cores)")
    args = parser.parse_args()
    if args.tool == "pandas":
        rows = run_pandas(args.tasks, args.samples, args.out)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        rows = run_duckdb(args.tasks, args.samples, args.out, args.threads)
    print(f"wrote {args.out}: {rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
