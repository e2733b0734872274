"""DCGM exporter as deployed without its Kubernetes mapping, with only one of its energy and power metrics,
with Prometheus' target labels beside its own, and the machine facts exporters give, against a real
Prometheus (TSDB blocks built by promtool from hand-written OpenMetrics).

Labels follow the exporters' own templates (shared/reference/energy-measurement.md §4.1, §4.3;
dcgm-exporter internal/pkg/rendermetrics, node_exporter collector/cpu_linux.go): DCGM
``{gpu,UUID,pci_bus_id,device,modelName,Hostname}`` plus ``pod,namespace,container`` only with the mapping,
``uuid``/``pod_name``/``pod_namespace`` in the old mode; node_exporter ``node_cpu_info{package,core,cpu,
vendor,family,model,model_name,...}`` (only with --collector.cpu.info) and ``node_uname_info{nodename}``.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow.compute as pc
import pytest

from collectors.cluster.prometheus import connect, gpu_ids_by_pod, read_power_samples
from collectors.cluster.prometheus_machines import complete_machines, read_machines
from datasets.openmetrics import create_tsdb_blocks
from schemas.validation import conform

PROMTOOL = shutil.which("promtool")
T0 = datetime(2026, 11, 5, 8, tzinfo=UTC)
STEP_S = 5
SAMPLES = 12
# A second window an hour later holds only DCGM energy counters, none with pod labels.
LATER = timedelta(hours=1)
A100 = "NVIDIA A100-SXM4-40GB"
XEON = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"


def _openmetrics() -> str:
    families: dict[str, list[str]] = {}

    def series(name: str, labels: dict[str, str], values, first: int = 0, offset_s: float = 0) -> None:
        text = ",".join(f'{key}="{value}"' for key, value in labels.items())
        start = T0.timestamp() + offset_s
        for i, value in enumerate(values, start=first):
            families.setdefault(name, []).append(
                f"{name}{{{text}}} {float(value)!r} {start + i * STEP_S:.3f}"
            )

    ramp = np.arange(SAMPLES, dtype=float)
    ones = np.ones(SAMPLES)

    def gpu(index: int, uuid: str, host: str | None, instance: str) -> dict[str, str]:
        labels = {"gpu": str(index), "UUID": uuid, "pci_bus_id": f"00000000:{0x17 + index:02X}:00.0"}
        labels |= {"device": f"nvidia{index}", "modelName": A100, "instance": instance}
        return labels | ({"Hostname": host} if host else {})

    # gpu-a: energy counters only (mJ), no pod labels: the exporter runs without --kubernetes.
    for index in (1, 0):
        labels = gpu(index, f"GPU-a{index}", "gpu-a", "10.1.0.1:9400")
        series("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", labels, 1e9 + 250_000 * STEP_S * ramp)
    # gpu-b: power only, no hostname label, scraped through a ServiceMonitor: the target's own
    # namespace/pod/container labels are there, the exporter's mapping renamed to exported_*.
    target = {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x7k2p", "container": "exporter"}
    workload = {
        "exported_namespace": "argo",
        "exported_pod": "train-wf-train-42",
        "exported_container": "main",
    }
    b0 = gpu(0, "GPU-b0", None, "10.1.0.2:9400") | target
    series("DCGM_FI_DEV_POWER_USAGE", b0, 60 + ramp[:4])
    series("DCGM_FI_DEV_POWER_USAGE", b0 | workload, 300 + ramp[4:8], first=4)
    series("DCGM_FI_DEV_POWER_USAGE", b0, 60 + ramp[8:], first=8)
    # gpu-c: the old mode's labels.
    old = {"gpu": "0", "uuid": "GPU-c0", "modelName": A100, "Hostname": "gpu-c", "instance": "10.1.0.3:9400"}
    series("DCGM_FI_DEV_POWER_USAGE", old | {"pod_namespace": "argo", "pod_name": "old-pod"}, 100 + ramp)
    # Only counters an hour later.
    series(
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        gpu(0, "GPU-a0", "gpu-a", "10.1.0.1:9400"),
        2e9 + 100_000 * ramp,
        offset_s=LATER.total_seconds(),
    )

    # node_exporter: gpu-a with cpu info (2 sockets x 2 CPUs), gpu-b with the default idle seconds only.
    for host, instance in (("gpu-a", "10.1.0.1:9100"), ("gpu-b", "10.1.0.2:9100")):
        uname = {"domainname": "(none)", "instance": instance, "machine": "x86_64", "nodename": host}
        series("node_uname_info", uname | {"release": "6.1.0-18-amd64", "sysname": "Linux"}, ones)
    for cpu in range(4):
        info = {"cachesize": "49152 KB", "core": str(cpu % 2), "cpu": str(cpu), "family": "6"}
        info |= {"instance": "10.1.0.1:9100", "microcode": "0xd0003a5", "model": "106"}
        info |= {"model_name": XEON, "package": str(cpu // 2), "stepping": "6", "vendor": "GenuineIntel"}
        series("node_cpu_info", info, ones)
    for cpu in range(8):
        idle = {"cpu": str(cpu), "instance": "10.1.0.2:9100", "mode": "idle"}
        series("node_cpu_seconds_total", idle, 1000 + 5 * ramp)
        series("node_cpu_seconds_total", idle | {"mode": "user"}, 10 + ramp)
    series("node_memory_MemTotal_bytes", {"instance": "10.1.0.1:9100"}, 540535263232 * ones)
    series("node_memory_MemTotal_bytes", {"instance": "10.1.0.2:9100"}, 270085009408 * ones)
    # Kepler's cpu info for a node no node_exporter describes.
    for cpu in range(2):
        kepler = {"core_id": str(cpu), "model_name": XEON, "node_name": "cpu-k", "physical_id": "0"}
        series("kepler_node_cpu_info", kepler | {"processor": str(cpu), "vendor_id": "GenuineIntel"}, ones)

    text = [line for name, lines in families.items() for line in [f"# TYPE {name} unknown", *lines]]
    return "\n".join([*text, "# EOF", ""])


@pytest.fixture(scope="module")
def client(tmp_path_factory, request, start_prometheus):
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (make test installs Debian's prometheus package as root)")
    root = tmp_path_factory.mktemp("prometheus-gpus")
    (root / "gpus.om").write_text(_openmetrics())
    create_tsdb_blocks(root / "gpus.om", root / "tsdb", PROMTOOL)
    server = start_prometheus(root, "scrape_configs: []\n", root / "tsdb")
    request.addfinalizer(server.stop)
    return connect(server.url, timeout_seconds=20, retries=0)


WINDOW = (T0, T0 + timedelta(seconds=STEP_S * (SAMPLES - 1)))


def test_dcgm_reads_whichever_of_energy_and_power_each_exporter_gives(client):
    samples = read_power_samples(client, ["dcgm"], *WINDOW)
    kinds = {
        (r["host_node"], r["device_id"], r["value_kind"])
        for r in samples.select(["host_node", "device_id", "value_kind"]).to_pylist()
    }
    assert kinds == {
        ("gpu-a", "GPU-a0", "energy_counter_joules"),
        ("gpu-a", "GPU-a1", "energy_counter_joules"),
        ("gpu-b", "GPU-b0", "power_watts"),
        ("gpu-c", "GPU-c0", "power_watts"),
    }
    a0 = samples.filter(pc.equal(samples["device_id"], "GPU-a0"))["value"].to_numpy()
    np.testing.assert_allclose(a0, (1e9 + 250_000 * STEP_S * np.arange(SAMPLES)) / 1000)
    # GPU-b0's series changes labels while a pod holds it: still one device series, every sample once.
    assert samples.filter(pc.equal(samples["device_id"], "GPU-b0")).num_rows == SAMPLES


def test_pod_holders_from_renamed_and_old_mode_labels_not_the_exporters_own_pod(client):
    assert gpu_ids_by_pod(client, *WINDOW) == {
        ("argo", "old-pod"): ["GPU-c0"],
        ("argo", "train-wf-train-42"): ["GPU-b0"],
    }


def test_energy_counters_alone_without_pod_labels_are_no_error(client):
    start, end = (moment + LATER for moment in WINDOW)
    assert gpu_ids_by_pod(client, start, end) == {}
    samples = read_power_samples(client, ["dcgm"], start, end)
    assert set(samples["value_kind"].to_pylist()) == {"energy_counter_joules"} and samples.num_rows == SAMPLES


def test_machines_from_node_exporter_kepler_and_dcgm(client):
    rows = {
        row["host_node"]: row for row in read_machines(client, ["gpu-a", "gpu-b", "cpu-k", "ghost"], *WINDOW)
    }
    assert set(rows) == {"gpu-a", "gpu-b", "cpu-k"}  # "ghost" is described by nothing
    a = rows["gpu-a"]
    assert (a["cpu_model"], a["sockets"], a["cores"], a["cpu_speed_mhz"]) == (XEON, 2, 4, 2000.0)
    assert a["memory_bytes"] == 540535263232 and a["gpu_models"] == [A100, A100]
    b = rows["gpu-b"]
    assert (b["cpu_model"], b["sockets"], b["cores"], b["memory_bytes"]) == (None, None, 8, 270085009408)
    assert b["gpu_models"] == [A100]
    k = rows["cpu-k"]
    assert (k["cpu_model"], k["sockets"], k["cores"], k["gpu_models"]) == (XEON, 1, 2, [])


def test_kubernetes_rows_are_completed_and_unknown_hosts_kept_unknown(client):
    known = conform(
        "machines",
        [
            {
                "host_node": "gpu-a",
                "cpu_model": None,
                "sockets": None,
                "cores": 64,
                "gpu_models": ["NVIDIA-A100-SXM4-40GB"],
                "fpga_models": [],
                "labels": [("kubernetes.io/hostname", "gpu-a")],
                "provenance": "measured",
            }
        ],
    )
    hosts = ["gpu-a", "gpu-b", "ghost"]
    table, origin = complete_machines(known, hosts, read_machines(client, hosts, *WINDOW))
    rows = {row["host_node"]: row for row in table.to_pylist()}
    assert origin == {"prometheus": ["gpu-b"], "filled": ["gpu-a"], "unknown": ["ghost"]}
    # Kubernetes' own values stay; only its empty fields are filled.
    assert (rows["gpu-a"]["cpu_model"], rows["gpu-a"]["sockets"], rows["gpu-a"]["cores"]) == (XEON, 2, 64)
    assert rows["gpu-a"]["gpu_models"] == ["NVIDIA-A100-SXM4-40GB"]
    ghost = rows["ghost"]
    assert ghost["cpu_model"] is None and ghost["cores"] is None and ghost["gpu_models"] == []
