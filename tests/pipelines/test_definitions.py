"""The Dagster definitions load, and `jouletrace demo` materializes every asset and passes every check."""

import importlib.util
import json

import dagster as dg
import pytest

import schemas
from pipelines.build import build_definitions
from pipelines.cli import main
from pipelines.demo import energy_model_line
from pipelines.settings import Settings

EXPECTED_ASSETS = {
    "workflow_runs",
    "task_runs",
    "machines",
    "power_samples",
    "container_samples",
    "task_energy",
    "node_energy_balance",
    "energy_traces",
    "wfinstances_export",
    "wta_export",
    "allocation_evaluation",
    "scheduling_evaluation",
    "training_set",
    "energy_regressor",
    "power_regressor",
    "runtime_regressor",
    "model_evaluation",
}
# The learned policy's assets are there when the `policy` extra is installed (make test installs it).
POLICY_ASSETS = {"learned_policy", "policy_evaluation"} if importlib.util.find_spec("torch") else set()
EXPECTED_ASSETS |= POLICY_ASSETS
# Assets that are not a table of the trace model (no schema_valid check).
NOT_TRACE_TABLES = POLICY_ASSETS | {
    "energy_traces",
    "wfinstances_export",
    "wta_export",
    "allocation_evaluation",
    "scheduling_evaluation",
    "training_set",
    "energy_regressor",
    "power_regressor",
    "runtime_regressor",
    "model_evaluation",
}
# A model-quality check, not a data check: on 6 workflows (six different applications) a held-out workflow
# is an application the energy regressor never saw, and it can lose to the TDP estimate there.
MODEL_QUALITY_CHECKS = {"energy_regressor:beats_tdp_baseline"}


def test_definitions_load_from_the_workspace_module(monkeypatch, tmp_path):
    monkeypatch.setenv("JOULETRACE_DATA", str(tmp_path))
    from pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == EXPECTED_ASSETS
    upstream = {k.to_user_string() for k in graph.get(dg.AssetKey("power_samples")).parent_keys}
    assert upstream == {"task_runs", "machines"}
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert ("node_energy_balance", "balance_closes") in checks
    assert ("task_energy", "energies_non_negative") in checks
    assert {a for a, name in checks if name == "schema_valid"} == EXPECTED_ASSETS - NOT_TRACE_TABLES
    assert {a for a, name in checks if name == "formats_valid"} == {"wfinstances_export", "wta_export"}
    assert ("energy_regressor", "beats_tdp_baseline") in checks


def test_missing_recorded_folder_is_a_clear_error(tmp_path):
    defs = build_definitions(Settings.under(tmp_path, recorded_dir=tmp_path / "nowhere"))
    job = defs.resolve_implicit_global_asset_job_def()
    with pytest.raises(Exception, match="no recorded sources"):
        job.execute_in_process(instance=dg.DagsterInstance.ephemeral())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--out", str(out), "--workflows", "6", "--seed", "3"])
    return out, code


def test_demo_materializes_every_asset_and_passes_every_check(demo_run, capsys):
    out, code = demo_run
    summary = json.loads((out / "report" / "summary.json").read_text())
    # Every data check passes; the demo exits 1 exactly when some check failed.
    assert set(summary["checks_failed"]) <= MODEL_QUALITY_CHECKS and summary["checks_passed"] >= 8
    assert code == (1 if summary["checks_failed"] else 0)
    with dg.DagsterInstance.from_config(str(out / "dagster_home")) as instance:
        materialized = {
            key.to_user_string()
            for key in EXPECTED_ASSETS_KEYS
            if instance.get_latest_materialization_event(key) is not None
        }
        energy_event = instance.get_latest_materialization_event(dg.AssetKey("task_energy"))
    assert materialized == EXPECTED_ASSETS
    splits = energy_event.asset_materialization.metadata["rows_by_split"].value
    assert splits["usage-fitted"] > 0 and splits["exclusive"] > 0  # CPU usage series, whole GPUs/FPGAs
    # The dataset is valid and covers every device kind of the sample world.
    checked = schemas.validate_path(out / "dataset")
    assert set(checked) == set(schemas.TABLES)
    assert set(summary["joules_by_device_kind"]) == {"cpu_package", "dram", "gpu", "fpga"}
    assert summary["accuracy"]["median_relative_error"] < 0.05
    assert (out / "report" / "attribution_vs_truth.png").read_bytes()[:4] == b"\x89PNG"
    # The regressors' folders, and the report line on the energy regressor.
    for target in ("energy_joules", "avg_power_watts", "runtime_seconds"):
        assert (out / "models" / target / "metrics.json").is_file()
    assert "on held-out workflows: MAPE" in energy_model_line(out)


EXPECTED_ASSETS_KEYS = [dg.AssetKey(name) for name in sorted(EXPECTED_ASSETS)]
