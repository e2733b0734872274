"""The node agent: samples every power source on a fixed cadence, serves Prometheus metrics, spools Parquet.

Modules: `options` (what it is told), `probe` (`--probe`), `metrics` (state and exposition), `spool`
(raw readings to Parquet), `server` (sampling thread, HTTP server, `run_agent`), `cli` (its command line).

One sampling thread reads the sources, feeds the readings to an energy accumulator (wrap-corrected joules
since the agent started) and updates the metric state under a lock; the HTTP server renders that state in
its own threads, so a slow scrape never delays a sample. With a spool folder the raw readings (counters as
read, with their wrap point) are also written to ``power_samples`` Parquet files, so attribution can
re-check every wrap and nothing depends on Prometheus having scraped.

Per-container usage, for splitting a node's energy between the pods on it: CPU seconds from the cgroup v2
tree, and GPU busy seconds from NVML's per-process utilisation, each process's seconds added to the pod
container its ``/proc/<pid>/cgroup`` names (``GpuBusyCounters``).
"""
