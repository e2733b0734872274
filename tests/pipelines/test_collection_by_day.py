"""Collection by day on a sample world that runs across midnight: partitions, backfill ranges, the nightly
schedule, the finished-run sensor (Dagster's own test contexts, recorded sources) and the automation of
everything after the dataset."""

import json
import shutil
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from datasets.sample_world import generate
from datasets.store import read_table
from pipelines.build import build_definitions
from pipelines.collect import sensors
from pipelines.collect.partitions import range_tags
from pipelines.collect.resources import RecordedArgoRuns
from pipelines.run import run_config
from pipelines.settings import Settings

# Late in the evening: some workflows start on the 2nd, some on the 3rd, and some of the 2nd's run past
# midnight.
EVENING = datetime(2026, 11, 2, 23, 48, tzinfo=UTC)
DAY_1, DAY_2 = "2026-11-02", "2026-11-03"
TABLES = ("workflows", "tasks", "task_energy")


@pytest.fixture(scope="module")
def evening_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evening") / "recorded"
    world = generate(folder, n_workflows=8, seed=11, start=EVENING)
    return folder, world


def _settings(data, recorded) -> Settings:
    return Settings.under(data, recorded_dir=recorded)


def _run(settings: Settings, instance: dg.DagsterInstance, **how) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def(sensors.COLLECTION_JOB)
    config = run_config(log_level="WARNING")
    return job.execute_in_process(instance=instance, run_config=config, raise_on_error=False, **how)


def _keys(root, name):
    table = read_table(root, name)
    columns = ["workflow_uid"] + (["task_id"] if name != "workflows" else [])
    columns += ["device_kind", "device_id"] if name == "task_energy" else []
    return table, list(zip(*(table[c].to_pylist() for c in columns), strict=True))


@pytest.fixture(scope="module")
def collected(evening_world, tmp_path_factory):
    """The two days collected one run each (and the first day again), and both in one range run."""
    recorded, world = evening_world
    by_day = _settings(tmp_path_factory.mktemp("by-day") / "data", recorded)
    one_run = _settings(tmp_path_factory.mktemp("one-run") / "data", recorded)
    instance = dg.DagsterInstance.ephemeral()
    day_results = [_run(by_day, instance, partition_key=day) for day in (DAY_1, DAY_2)]
    first_rows = {name: read_table(by_day.dataset_dir, name).num_rows for name in TABLES}
    again = _run(by_day, instance, partition_key=DAY_1)
    schedule = build_definitions(one_run).get_schedule_def("nightly_collection")
    request = schedule.evaluate_tick(
        dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 4, 1, 30, tzinfo=UTC))
    ).run_requests[0]
    range_result = _run(one_run, instance, tags=request.tags)
    return {
        "world": world,
        "by_day": by_day,
        "one_run": one_run,
        "results": [*day_results, again, range_result],
        "first_rows": first_rows,
        "request": request,
    }


def test_the_world_really_crosses_midnight(evening_world):
    recorded, _ = evening_world
    objects = RecordedArgoRuns(directory=str(recorded)).workflow_objects(None, None)
    starts = {o["status"]["startedAt"][:10] for o in objects}
    ran_over = [o for o in objects if o["status"]["startedAt"][:10] < o["status"]["finishedAt"][:10]]
    assert starts == {DAY_1, DAY_2} and ran_over


def test_each_day_is_written_once_and_a_second_run_overwrites_it(collected):
    assert all(result.success for result in collected["results"])
    root = collected["by_day"].dataset_dir
    for name in TABLES:
        table, keys = _keys(root, name)
        assert len(keys) == len(set(keys)), f"{name} has duplicated rows"
        assert table.num_rows == collected["first_rows"][name]
    assert sorted(p.name for p in (root / "workflows").iterdir()) == [f"date={DAY_1}", f"date={DAY_2}"]


def test_days_collected_apart_equal_both_collected_in_one_range_run(collected):
    """The second day's run reads the first day's workflows that ran past midnight as context, so its
    tasks get the same energy as when both days are attributed together."""
    apart, together = collected["by_day"].dataset_dir, collected["one_run"].dataset_dir
    for name in TABLES:
        assert sorted(_keys(apart, name)[1]) == sorted(_keys(together, name)[1])
    a, b = (read_table(root, "task_energy").to_pandas() for root in (apart, together))
    key = ["workflow_uid", "task_id", "device_kind", "device_id"]
    joined = a.merge(b, on=key, suffixes=("_apart", "_together"))
    total_apart, total_together = joined["energy_joules_apart"].sum(), joined["energy_joules_together"].sum()
    assert abs(total_apart - total_together) <= 0.005 * total_together
    relative = (joined["energy_joules_apart"] - joined["energy_joules_together"]).abs() / joined[
        "energy_joules_together"
    ].clip(lower=1.0)
    assert relative.median() < 0.01


def test_the_nightly_schedule_collects_yesterday_and_the_lookback_day_in_one_run(collected):
    tags = collected["request"].tags
    assert range_tags(dg.PartitionKeyRange(DAY_1, DAY_2)).items() <= tags.items()
    root = collected["one_run"].dataset_dir
    assert read_table(root, "workflows").num_rows == 8


def _walk(defs, argo, cursor, ticks=50):
    """Ticks until a listing pass completes; every run request and the final cursor."""
    sensor, requests = defs.get_sensor_def("finished_argo_runs"), []
    for _ in range(ticks):
        context = dg.build_sensor_context(cursor=cursor, resources={"argo": argo}, definitions=defs)
        result = sensor.evaluate_tick(context)
        requests += result.run_requests
        cursor = result.cursor
        if json.loads(cursor)["token"] is None:
            return requests, cursor
    raise AssertionError("the listing never ended")


def test_the_sensor_pages_through_finished_runs_and_requests_each_day_they_touched(
    evening_world, tmp_path, monkeypatch
):
    recorded, _ = evening_world
    folder = tmp_path / "recorded"
    shutil.copytree(recorded, folder)
    monkeypatch.setattr(sensors, "PAGE_SIZE", 3)
    monkeypatch.setattr(sensors, "PAGES_PER_TICK", 1)
    defs = build_definitions(_settings(tmp_path / "data", folder))
    argo = RecordedArgoRuns(directory=str(folder))
    start = json.dumps({"watermark": "2026-11-01T00:00:00+00:00"})

    requests, cursor = _walk(defs, argo, start)
    assert sorted({r.partition_key for r in requests}) == [DAY_1, DAY_2]
    assert len({r.run_key for r in requests}) == len(requests)
    assert len(requests) >= 3, "8 workflows at 3 per page: several ticks, each requesting its days"

    again, cursor = _walk(defs, argo, cursor)
    assert again == []

    # A workflow that finishes later, on the 4th, having started on the 3rd.
    source = sorted((folder / "argo" / "workflows").rglob("*.json"))[0]
    late = json.loads(source.read_text())
    late["metadata"]["uid"] += "-late"
    late["metadata"]["name"] += "-late"
    late["status"]["startedAt"] = "2026-11-03T23:50:00Z"
    late["status"]["finishedAt"] = "2026-11-04T00:20:00Z"
    source.with_name(late["metadata"]["name"] + ".json").write_text(json.dumps(late))
    fresh, _ = _walk(defs, argo, cursor)
    assert sorted(r.partition_key for r in fresh) == [DAY_2, "2026-11-04"]


def test_a_first_tick_without_cursor_only_looks_one_day_back(evening_world, tmp_path):
    recorded, _ = evening_world
    defs = build_definitions(_settings(tmp_path / "data", recorded))
    requests, cursor = _walk(defs, RecordedArgoRuns(directory=str(recorded)), None)
    assert requests == []  # the world is a month old: a backfill's work
    assert datetime.fromisoformat(json.loads(cursor)["watermark"]) > datetime.now(UTC) - timedelta(days=40)


DOWNSTREAM = {
    "wfinstances_export",
    "wta_export",
    "training_set",
    "energy_regressor",
    "power_regressor",
    "runtime_regressor",
    "allocation_evaluation",
    "scheduling_evaluation",
}


def test_a_new_day_of_traces_sets_off_exports_training_and_evaluations(collected):
    settings = collected["by_day"]
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(settings)
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert before.total_requested == 0
    assert _run(settings, instance, partition_key=DAY_2).success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    requested = {
        key.to_user_string()
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if after.get_num_requested(key)
    }
    graph = defs.resolve_asset_graph()
    after_dataset = dg.AssetSelection.assets("energy_traces").downstream(include_self=False)
    assert requested == {key.to_user_string() for key in after_dataset.resolve(graph)}
    assert requested >= DOWNSTREAM


def test_a_failed_balance_check_keeps_the_day_out_of_the_dataset_and_training(
    evening_world, tmp_path, monkeypatch
):
    import pipelines.traces.checks as checks

    monkeypatch.setattr(checks, "balance_problems", lambda balance, energy: ["injected: does not close"])
    recorded, _ = evening_world
    settings = _settings(tmp_path / "data", recorded)
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(settings)
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    result = _run(settings, instance, partition_key=DAY_1)
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["balance_closes"]
    assert not (settings.dataset_dir / "workflows").exists()
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    assert after.total_requested == 0


def test_the_ui_sees_coverage_and_the_node_balance_plot_of_each_day(collected):
    day_result = collected["results"][0]
    events = day_result.get_asset_materialization_events()
    energy = {e.asset_key.to_user_string(): e.materialization.metadata for e in events}
    coverage = energy["task_energy"]["coverage_by_device_kind"].value
    # Every task of the sample world that ran has readings of its node's CPU package.
    assert coverage["any"] == 1.0 and coverage["cpu_package"] == 1.0
    assert 0.0 < coverage.get("gpu", 0.0) < 1.0  # only GPU tasks have GPU energy
    plot = energy["node_energy_balance"]["node_balance"].value
    assert plot.startswith("![node energy balance](data:image/png;base64,iVBORw0KGgo")
    assert energy["energy_traces"]["days"].value == [DAY_1]
    # Seven of the eight workflows started on the first day; the eighth was read as context only.
    assert energy["energy_traces"]["rows_written"].value["workflows"] == 7
    assert (
        energy["task_runs"]["dagster/row_count"].value
        == read_table(collected["by_day"].dataset_dir, "tasks").num_rows
    )
