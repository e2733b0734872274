"""FPGA board power: hwmon on a fake sysfs (Alveo XMC, Alveo data-driven, Intel MAX 10 BMC) and xbutil JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from collectors.meters.fpga import (
    XBUTIL_NOT_FOUND,
    HwmonFpgaSource,
    XrtFpgaSource,
    is_fpga_hwmon,
    parse_xbutil_electrical,
)
from schemas.kinds import POWER_GAUGE

ALVEO = "0000:af:00.0"
U55C_MGMT, U55C_USER = "0000:3b:00.0", "0000:3b:00.1"
PAC = "0000:b1:00.0"


def fpga_node(fake_sysfs) -> None:
    """A host with an Alveo U250 (XMC), a U55C (data-driven sensors on both functions), a PAC N3000, a CPU."""
    fake_sysfs.add_hwmon(0, "coretemp", 0)
    fake_sysfs.add_hwmon(1, "xclmgmt_microblaze", 23_456_789, label="POWER", pci_address=ALVEO)
    fake_sysfs.add_hwmon(2, "n3000bmc_hwmon", 1_000_000, label="QSFP0 Power", pci_address=PAC)
    fake_sysfs.add_hwmon(2, "n3000bmc_hwmon", 41_250_000, label="Board Power", pci_address=PAC, channel=2)
    for index, address, function in ((3, U55C_MGMT, "mgmt"), (4, U55C_USER, "user")):
        name = f"xilinx_u55c_gen3x16_xdma_base_3_hwmon_sdm_{function}"
        folder = fake_sysfs.add_hwmon(index, name, 19, label="Total Power", pci_address=address)
        (folder / "power1_unitm").write_text("0\n")
        (folder / "power1_units").write_text("Watts\n")


def test_fpga_driver_names():
    for name in ("xclmgmt_microblaze", "xocl_xmc", "n3000bmc_hwmon", "n6000bmc-hwmon", "intel_m10bmc_hwmon"):
        assert is_fpga_hwmon(name), name
    for name in ("coretemp", "nvme", "acpitz", "amdgpu", "k10temp"):
        assert not is_fpga_hwmon(name), name


def test_hwmon_meters_one_per_board_by_pci_address(fake_sysfs):
    fpga_node(fake_sysfs)
    source = HwmonFpgaSource(fake_sysfs.root)
    meters = source.meters()
    assert [m.device_id for m in meters] == [U55C_MGMT, ALVEO, PAC]
    for meter in meters:
        assert (meter.device_kind, meter.source, meter.value_kind) == ("fpga", "hwmon", POWER_GAUGE)
    by_id = {m.device_id: m for m in meters}
    assert by_id[PAC].path == str(fake_sysfs.hwmon / "hwmon2" / "power2_input")
    assert by_id[ALVEO].description == "xclmgmt_microblaze POWER (hwmon1)"


def test_hwmon_reads_watts(fake_sysfs):
    fpga_node(fake_sysfs)
    source = HwmonFpgaSource(fake_sysfs.root)
    result = source.read()
    assert result.errors == []
    watts = {r.meter.device_id: r.value for r in result.readings}
    assert watts == {
        ALVEO: pytest.approx(23.456789),
        PAC: pytest.approx(41.25),
        U55C_MGMT: pytest.approx(19.0),
    }
    fake_sysfs.set_power_uw(1, 60_000_000)
    assert {r.meter.device_id: r.value for r in source.read().readings}[ALVEO] == pytest.approx(60.0)


def test_hwmon_probe_lists_boards_and_what_it_ignored(fake_sysfs):
    fpga_node(fake_sysfs)
    lines = {line.what: line for line in HwmonFpgaSource(fake_sysfs.root).probe()}
    assert lines[f"{ALVEO} hwmon1 (xclmgmt_microblaze)"].readable
    assert lines[f"{PAC} hwmon2 (n3000bmc_hwmon)"].detail.startswith("41.250 W from ")
    coretemp = lines["hwmon0 (coretemp)"]
    assert not coretemp.readable
    assert "not an FPGA board" in coretemp.detail
    twin = lines["hwmon4 (xilinx_u55c_gen3x16_xdma_base_3_hwmon_sdm_user)"]
    assert not twin.readable
    assert f"same board as {U55C_MGMT}" in twin.detail


def test_hwmon_unlabelled_board_uses_power1_and_no_pci_link_uses_the_name(fake_sysfs):
    fake_sysfs.add_hwmon(0, "xocl_xmc", 12_000_000)
    [reading] = HwmonFpgaSource(fake_sysfs.root).read().readings
    assert (reading.meter.device_id, reading.value) == ("xocl_xmc", pytest.approx(12.0))


def test_hwmon_labelled_channels_without_board_power_are_not_guessed(fake_sysfs):
    fake_sysfs.add_hwmon(0, "n6000bmc_hwmon", 5_000_000, label="QSFP Power", pci_address=PAC)
    source = HwmonFpgaSource(fake_sysfs.root)
    assert source.meters() == []
    [line] = source.probe()
    assert "no whole-board power channel" in line.detail


def test_hwmon_unreadable_power_file_is_an_error_naming_it(fake_sysfs, as_unprivileged):
    fpga_node(fake_sysfs)
    power_file = fake_sysfs.hwmon / "hwmon1" / "power1_input"
    power_file.chmod(0o400)
    with as_unprivileged():
        result = HwmonFpgaSource(fake_sysfs.root).read()
    [error] = result.errors
    assert error.source == "hwmon"
    assert error.path == str(power_file)
    assert str(power_file) in error.message
    assert "Permission denied" in error.message
    assert {r.meter.device_id for r in result.readings} == {U55C_MGMT, PAC}


def test_hwmon_power_file_gone_is_an_error(fake_sysfs):
    fpga_node(fake_sysfs)
    source = HwmonFpgaSource(fake_sysfs.root)
    (fake_sysfs.hwmon / "hwmon2" / "power2_input").unlink()
    [error] = source.read().errors
    assert "power2_input" in error.message
    assert "No such file" in error.message


def test_no_hwmon_folder_at_all(fake_sysfs):
    source = HwmonFpgaSource(fake_sysfs.root)
    assert source.meters() == []
    assert source.read().errors == []
    [line] = source.probe()
    assert line.detail == "no hwmon devices"


def xbutil_report(bdf: str, watts) -> dict:
    """What `xbutil examine -d <bdf> -r electrical -f JSON -o <file>` writes (XRT 2.x, schema 2020.2)."""
    rail = {
        "voltage": {"volts": "12.132", "is_present": "true"},
        "current": {"amps": "1.043", "is_present": "true"},
    }
    return {
        "schema_version": {"schema": "JSON", "creation_date": "Tue Oct  1 04:27:20 2024 GMT"},
        "devices": [
            {
                "interface_type": "pcie",
                "device_id": bdf,
                "electrical": {
                    "power_rails": [
                        {"id": "12v_aux", "description": "12 Volts Auxillary", **rail},
                        {"id": "12v_pex", "description": "12 Volts PCI Express", **rail},
                    ],
                    "power_consumption_max_watts": "225",
                    "power_consumption_watts": watts,
                    "power_consumption_warning": "false",
                },
            }
        ],
    }


@pytest.mark.parametrize(("watts", "expected"), [(23.5, 23.5), ("23.45", 23.45), ("24", 24.0)])
def test_parse_xbutil_power(watts, expected):
    report = json.dumps(xbutil_report("0000:af:00.1", watts))
    assert parse_xbutil_electrical(report) == pytest.approx(expected)
    bare = {"electrical": {"power_consumption_watts": watts}}
    assert parse_xbutil_electrical(bare) == pytest.approx(expected)


@pytest.mark.parametrize("watts", ["N/A", "NA", "", None])
def test_parse_xbutil_without_power_names_the_field(watts):
    report = xbutil_report("0000:af:00.1", watts)
    if watts is None:
        del report["devices"][0]["electrical"]["power_consumption_watts"]
    with pytest.raises(ValueError, match=r"electrical\.power_consumption_watts"):
        parse_xbutil_electrical(report)


def test_parse_xbutil_rejects_a_report_without_one_device():
    with pytest.raises(ValueError, match="expected one device"):
        parse_xbutil_electrical({"devices": []})


class FakeXbutil:
    """Writes a report for each BDF to the -o path, as xbutil does; a BDF it does not know fails."""

    def __init__(self, watts_by_bdf: dict[str, object]):
        self.watts_by_bdf = watts_by_bdf
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str]) -> subprocess.CompletedProcess:
        self.calls.append(args)
        bdf = args[args.index("-d") + 1]
        if bdf not in self.watts_by_bdf:
            return subprocess.CompletedProcess(args, 1, "", f"ERROR: No devices found with BDF {bdf}\n")
        output = Path(args[args.index("-o") + 1])
        output.write_text(json.dumps(xbutil_report(bdf, self.watts_by_bdf[bdf])))
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def xbutil_path(tmp_path) -> str:
    """An executable named xbutil, so the source finds one; the injected runner does the work."""
    path = tmp_path / "xbutil"
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_xrt_reads_each_device(xbutil_path):
    runner = FakeXbutil({"0000:af:00.1": "23.45", "0000:d8:00.1": 31})
    source = XrtFpgaSource(["0000:af:00.1", "0000:d8:00.1"], run=runner, xbutil=xbutil_path)
    assert [(m.device_kind, m.device_id, m.source, m.value_kind) for m in source.meters()] == [
        ("fpga", "0000:af:00.1", "xrt", POWER_GAUGE),
        ("fpga", "0000:d8:00.1", "xrt", POWER_GAUGE),
    ]
    result = source.read()
    assert result.errors == []
    assert [(r.meter.device_id, r.value) for r in result.readings] == [
        ("0000:af:00.1", pytest.approx(23.45)),
        ("0000:d8:00.1", pytest.approx(31.0)),
    ]
    args = runner.calls[0]
    assert args[:-1] == [xbutil_path, "examine", "-d", "0000:af:00.1", "-r", "electrical", "-f", "JSON", "-o"]
    assert not Path(args[-1]).exists()  # the temporary folder is gone


def test_xrt_failure_and_na_are_errors_per_device(xbutil_path):
    runner = FakeXbutil({"0000:af:00.1": "N/A", "0000:d8:00.1": "30.5"})
    source = XrtFpgaSource(["0000:af:00.1", "0000:d8:00.1", "0000:5e:00.1"], run=runner, xbutil=xbutil_path)
    result = source.read()
    assert [r.meter.device_id for r in result.readings] == ["0000:d8:00.1"]
    not_available, unknown = result.errors
    assert "0000:af:00.1" in not_available.message
    assert "electrical.power_consumption_watts is 'N/A'" in not_available.message
    assert "xbutil exited with 1: ERROR: No devices found with BDF 0000:5e:00.1" in unknown.message
    lines = {line.what: line for line in source.probe()}
    assert lines["0000:d8:00.1"].readable
    assert not lines["0000:5e:00.1"].readable


def test_xrt_timeout_is_an_error(xbutil_path):
    def hang(args):
        raise subprocess.TimeoutExpired(args, 30)

    [error] = XrtFpgaSource(["0000:af:00.1"], run=hang, xbutil=xbutil_path).read().errors
    assert "running xbutil failed" in error.message


def test_xrt_without_xbutil_never_raises(tmp_path):
    def must_not_run(args):
        raise AssertionError("xbutil is missing: nothing to run")

    source = XrtFpgaSource(["0000:af:00.1"], run=must_not_run, xbutil=str(tmp_path / "no-such-xbutil"))
    assert source.status == XBUTIL_NOT_FOUND
    [error] = source.read().errors
    assert XBUTIL_NOT_FOUND in error.message
    [line] = source.probe()
    assert not line.readable
    assert line.detail.startswith(XBUTIL_NOT_FOUND)
