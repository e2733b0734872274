"""The baselines jouletrace's attribution engine is timed against: counter energy over each task window.

Both compute, for every task and every energy-counter series (device) on its node, E(finished_at) -
E(started_at) in joules, with no split among co-located tasks and no idle policy. E is the counter unwrapped
in integer microjoules (a negative step is one wrap of counter_max_joules, as RAPL's energy_uj wraps), 0 at
the first reading, linear between readings and held at the first/last reading outside them; readings of a
series are taken to have distinct times. Each reading carries the next one's time and step, so one backward
as-of join brackets every task boundary. The pandas version is what a data scientist would write (groupby
diff/cumsum/shift, merge_asof, groupby sum); the DuckDB version is the same in SQL with an ASOF join. Both do
the same float arithmetic, so they agree to rounding.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

COUNTER = "energy_counter_joules"
UJ_PER_J = 1e6


def pandas_task_joules(tasks: pa.Table, samples: pa.Table) -> pd.DataFrame:
    """Counter joules per (task, device of its node): merge_asof + interpolation + groupby."""
    readings = pa.table(
        {
            "host_node": samples["host_node"],
            "device_id": samples["device_id"],
            "value_kind": samples["value_kind"],
            "t_us": samples["timestamp"].cast(pa.int64()),
            "value": samples["value"],
            "counter_max_joules": samples["counter_max_joules"],
        }
    ).to_pandas(strings_to_categorical=True)
    readings = readings[readings["value_kind"] == COUNTER]
    readings["series"] = readings.groupby(["host_node", "device_id"], observed=True).ngroup()
    readings = readings.sort_values(["series", "t_us"], kind="stable")
    by_series = readings["series"]
    uj = (readings["value"] * UJ_PER_J).round().astype("int64")
    wrap_uj = (readings["counter_max_joules"].fillna(0.0) * UJ_PER_J).round().astype("int64")
    step_uj = uj.groupby(by_series).diff().fillna(0).astype("int64")
    step_uj = step_uj.where(step_uj >= 0, step_uj + wrap_uj)
    readings["e_uj"] = step_uj.groupby(by_series).cumsum()
    readings["next_uj"] = step_uj.groupby(by_series).shift(-1)
    readings["t_next"] = readings["t_us"].groupby(by_series).shift(-1)

    devices = readings.drop_duplicates("series")[["host_node", "device_id", "series"]]
    devices = devices.astype({"host_node": str, "device_id": str})
    windows = pa.table(
        {
            "task_id": tasks["task_id"],
            "host_node": tasks["host_node"],
            "start_us": tasks["started_at"].cast(pa.int64()),
            "end_us": tasks["finished_at"].cast(pa.int64()),
        }
    ).to_pandas()
    pairs = windows.merge(devices, on="host_node")
    pair = np.arange(len(pairs))
    events = pd.DataFrame(
        {
            "pair": np.concatenate([pair, pair]),
            "series": np.concatenate([pairs["series"].to_numpy()] * 2),
            "t_us": np.concatenate([pairs["start_us"].to_numpy(), pairs["end_us"].to_numpy()]),
            "sign": np.repeat([-1.0, 1.0], len(pairs)),
        }
    ).sort_values("t_us", kind="stable")
    # merge_asof needs both sides sorted by the time key, across series.
    right = readings[["series", "t_us", "e_uj", "next_uj", "t_next"]].assign(t_read=readings["t_us"])
    bracket = pd.merge_asof(events, right.sort_values("t_us"), on="t_us", by="series", direction="backward")

    t = bracket["t_us"].to_numpy(float)
    t0, e0 = bracket["t_read"].to_numpy(float), bracket["e_uj"].to_numpy(float)
    t1, step = bracket["t_next"].to_numpy(float), bracket["next_uj"].to_numpy(float)
    inside = e0 + step * (t - t0) / (t1 - t0)
    e_uj = np.where(np.isnan(t0), 0.0, np.where(np.isnan(t1), e0, inside))
    signed = pd.Series(bracket["sign"].to_numpy() * e_uj, index=bracket["pair"].to_numpy())
    joules = signed.groupby(level=0).sum() / UJ_PER_J
    result = pairs.loc[joules.index, ["task_id", "host_node", "device_id"]]
    return result.assign(joules=joules.to_numpy()).reset_index(drop=True)


# Series are numbered first: DuckDB sorts and joins on one integer far faster than on two strings.
DUCKDB_SQL = f"""
WITH devices AS MATERIALIZED (
    SELECT host_node, device_id, row_number() OVER () AS series
    FROM (SELECT DISTINCT host_node, device_id FROM samples WHERE value_kind = '{COUNTER}')
), steps AS (
    SELECT d.series, epoch_us(s."timestamp") AS t_us,
           CAST(round(coalesce(s.counter_max_joules, 0) * {UJ_PER_J}) AS BIGINT) AS wrap_uj,
           CAST(round(s.value * {UJ_PER_J}) AS BIGINT) AS uj,
           uj - lag(uj, 1, uj) OVER w AS step_uj,
           lead(uj) OVER w - uj AS next_step_uj,
           lead(t_us) OVER w AS t_next
    FROM samples s JOIN devices d USING (host_node, device_id)
    WHERE s.value_kind = '{COUNTER}'
    WINDOW w AS (PARTITION BY d.series ORDER BY s."timestamp")
), energy AS (
    SELECT series, t_us, t_next,
           CAST(sum(CASE WHEN step_uj < 0 THEN step_uj + wrap_uj ELSE step_uj END) OVER (
               PARTITION BY series ORDER BY t_us ROWS UNBOUNDED PRECEDING) AS BIGINT) AS e_uj,
           CASE WHEN next_step_uj < 0 THEN next_step_uj + wrap_uj ELSE next_step_uj END AS next_uj
    FROM steps
), events AS (
    SELECT t.task_id, d.host_node, d.device_id, d.series, epoch_us(t.started_at) AS t_us, -1.0 AS sign
    FROM tasks t JOIN devices d USING (host_node)
    UNION ALL
    SELECT t.task_id, d.host_node, d.device_id, d.series, epoch_us(t.finished_at) AS t_us, 1.0 AS sign
    FROM tasks t JOIN devices d USING (host_node)
)
SELECT e.task_id, e.host_node, e.device_id,
       sum(e.sign * CASE
           WHEN r.t_us IS NULL THEN 0.0
           WHEN r.t_next IS NULL THEN r.e_uj::DOUBLE
           ELSE r.e_uj::DOUBLE + r.next_uj::DOUBLE * (e.t_us - r.t_us)::DOUBLE / (r.t_next - r.t_us)::DOUBLE
       END) / {UJ_PER_J} AS joules
FROM events e
ASOF LEFT JOIN energy r ON e.series = r.series AND e.t_us >= r.t_us
GROUP BY e.task_id, e.host_node, e.device_id
"""


def duckdb_task_joules(tasks: pa.Table, samples: pa.Table, threads: int | None = None) -> pd.DataFrame:
    """The same quantity with DuckDB's ASOF join, on `threads` threads (DuckDB's default: all cores)."""
    con = duckdb.connect()
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    con.register("samples", samples)
    con.register("tasks", tasks.select(["task_id", "host_node", "started_at", "finished_at"]))
    return con.execute(DUCKDB_SQL).df()


def duckdb_threads(threads: int | None) -> int:
    """How many threads DuckDB runs with under `threads` (None: its default)."""
    con = duckdb.connect()
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return int(con.execute("SELECT current_setting('threads')").fetchone()[0])


def in_order(result: pd.DataFrame) -> pd.DataFrame:
    """`result` sorted by task and device, so two results compare row by row."""
    columns = ["task_id", "device_id", "joules"]
    return result[columns].sort_values(["task_id", "device_id"]).reset_index(drop=True)


def max_difference_joules(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Largest |a - b| over (task, device) rows; the two must have the same rows."""
    a, b = in_order(a), in_order(b)
    if not a[["task_id", "device_id"]].equals(b[["task_id", "device_id"]]):
        raise AssertionError("the two results do not have the same (task, device) rows")
    return float(np.max(np.abs(a["joules"].to_numpy() - b["joules"].to_numpy()), initial=0.0))
