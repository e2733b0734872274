"""`jouletrace argo-workflow`: Argo manifests from WF.json + S.json (+ P.json), checked against Argo's own
JSON Schema (../shared/data/argo-schema, v4.1.2) and parsed back."""

import copy
import json
import re
from itertools import pairwise

import jsonschema
import pytest
import yaml

from allocate.scheduling.argo import (
    DEFAULT_FPGA_RESOURCE,
    argo_names,
    parse_manifest,
    start_priorities,
)
from allocate.scheduling.schedule import Assignment
from pipelines.cli import main

ARGO_NAME = re.compile(r"[a-z][-a-z0-9]*")  # what we promise: Argo's names, lower case, no leading digit
MONTAGE = "montage-chameleon-dss-05d-001.json"


# ------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def argo_schema(shared_data):
    """Argo's schema with the Workflow definition as its root (the file's root is a oneOf of resources)."""
    full = json.loads((shared_data / "argo-schema" / "argo-workflows-v4.1.2.schema.json").read_text())
    assert full["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    schema = {
        "$schema": full["$schema"],
        "$ref": "#/definitions/io.argoproj.workflow.v1alpha1.Workflow",
        "definitions": full["definitions"],
    }
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def manifest_problems(validator, manifest: dict) -> list[str]:
    """Argo's JSON Schema errors, plus the rules of Argo's validator the schema does not hold (template names
    required, unique and well formed, references that resolve): empty when the manifest is fine."""
    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)
    ]
    if problems:
        return problems
    spec = manifest["spec"]
    names = [t.get("name") for t in spec.get("templates", [])]
    problems += [f"templates[{k}] has no name" for k, n in enumerate(names) if not n]
    problems += [f"template name {n!r} is repeated" for n in {n for n in names if n and names.count(n) > 1}]
    problems += [
        f"template name {n!r} is not an Argo name" for n in names if n and not ARGO_NAME.fullmatch(n)
    ]
    if spec.get("entrypoint") not in names:
        problems.append(f"entrypoint {spec.get('entrypoint')!r} is not a template")
    for template in spec.get("templates", []):
        tasks = (template.get("dag") or {}).get("tasks") or []
        task_names = [t["name"] for t in tasks]
        problems += [
            f"DAG task {n!r} is repeated" for n in {n for n in task_names if task_names.count(n) > 1}
        ]
        for task in tasks:
            if not ARGO_NAME.fullmatch(task["name"]) or len(task["name"]) > 63:
                problems.append(f"DAG task name {task['name']!r} is not an Argo name")
            if task.get("template") not in names:
                problems.append(f"DAG task {task['name']!r} uses unknown template {task.get('template')!r}")
            problems += [
                f"DAG task {task['name']!r} depends on unknown {d!r}"
                for d in task.get("dependencies") or []
                if d not in task_names
            ]
    return problems


def write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def run(tmp_path, workflow, schedule, *extra, platform=None, out="workflow.yaml"):
    """Run the real CLI; return (exit code, manifest or None, out path)."""
    args = ["argo-workflow", "--workflow", write(tmp_path / "WF.json", workflow)]
    args += ["--schedule", write(tmp_path / "S.json", schedule), "--image", "ghcr.io/example/task:1.0"]
    if platform is not None:
        args += ["--platform", write(tmp_path / "P.json", platform)]
    target = tmp_path / out
    code = main([*args, *extra, "--out", str(target)])
    return code, (yaml.safe_load(target.read_text()) if target.exists() else None), target


def templates_by_task(manifest) -> dict[str, dict]:
    return {
        t["metadata"]["annotations"]["jouletrace.io/task-id"]: t
        for t in manifest["spec"]["templates"]
        if "container" in t
    }


def assert_priorities_follow_starts(parsed):
    for a in parsed.task_ids:
        for b in parsed.task_ids:
            if parsed.planned[a][0] < parsed.planned[b][0]:
                assert parsed.priorities[a] > parsed.priorities[b], (a, b)
            elif parsed.planned[a][0] == parsed.planned[b][0]:
                assert parsed.priorities[a] == parsed.priorities[b], (a, b)
    starts = [parsed.planned[t][0] for t in parsed.task_ids]
    assert starts == sorted(starts)  # the DAG lists tasks in planned start order


# ------------------------------------------------------------------------------------ a small DAG


LONG_ID = "Analysis_" + "x" * 80
TASKS = ["1st_pass", "Prep_Data", "train.GPU_01", "eval_A", "Eval-A", "schedule", LONG_ID]
EDGES = [
    ("1st_pass", "Prep_Data"),
    ("Prep_Data", "train.GPU_01"),
    ("Prep_Data", "Eval-A"),
    ("train.GPU_01", "eval_A"),
    ("Eval-A", "schedule"),
    ("eval_A", LONG_ID),
    ("schedule", LONG_ID),
]
# task -> machine, start, end; Eval-A and train.GPU_01 start together (a tie)
PLAN = {
    "1st_pass": ("cpu-node-1", 0.0, 4.0),
    "Prep_Data": ("cpu-node-1", 4.0, 10.0),
    "train.GPU_01": ("GPU_Box", 10.0, 30.0),
    "Eval-A": ("cpu-node-1", 10.0, 15.0),
    "schedule": ("cpu-node-1", 15.5, 20.0),
    "eval_A": ("cpu-node-1", 30.0, 35.0),
    LONG_ID: ("GPU_Box", 35.0, 36.25),
}


def small_workflow(tasks=TASKS, edges=EDGES):
    vertices = [{"id": t, "work_seconds": 5.0} | ({"device": "gpu"} if "GPU" in t else {}) for t in tasks]
    return {
        "format": "jouletrace.workflow/1",
        "name": "Small_Test WF",
        "tasks": vertices,
        "edges": [{"source": s, "target": t} for s, t in edges],
    }


def small_schedule(plan=PLAN):
    assignments = [
        {"task_id": t, "machine_id": m, "start_seconds": s, "end_seconds": e} for t, (m, s, e) in plan.items()
    ]
    return {"format": "jouletrace.schedule/1", "algorithm": "energy-heft", "assignments": assignments}


GPU_LABELS = {"kubernetes.io/hostname": "gpu-box-7", "example.org/pool": "gpu"}


def small_platform(gpus=1):
    return {
        "format": "jouletrace.platform/1",
        "bandwidth_bytes_per_second": 1e9,
        "machines": [
            {"id": "cpu-node-1", "cores": 4},
            {"id": "GPU_Box", "cores": 8, "gpus": gpus, "labels": GPU_LABELS},
        ],
    }


def test_small_dag_validates_pins_tasks_and_round_trips(tmp_path, argo_schema, capsys):
    code, manifest, _ = run(tmp_path, small_workflow(), small_schedule(), platform=small_platform())
    assert code == 0
    assert capsys.readouterr().out.strip().startswith("wrote ")
    assert manifest_problems(argo_schema, manifest) == []

    parsed = parse_manifest(manifest)
    assert set(parsed.edges) == set(EDGES)
    assert parsed.placement == {t: m for t, (m, _, _) in PLAN.items()}
    assert parsed.planned == {t: (s, e) for t, (_, s, e) in PLAN.items()}
    assert parsed.workflow_name == "Small_Test WF" and parsed.algorithm == "energy-heft"
    assert_priorities_follow_starts(parsed)
    assert parsed.priorities["1st_pass"] == 6 and parsed.priorities[LONG_ID] == 1

    templates = templates_by_task(manifest)
    assert set(templates) == set(TASKS)
    for task_id, template in templates.items():
        machine = PLAN[task_id][0]
        expected = GPU_LABELS if machine == "GPU_Box" else {"kubernetes.io/hostname": "cpu-node-1"}
        assert template["nodeSelector"] == expected
        container = template["container"]
        assert container["resources"]["requests"] == {"cpu": "1"}
        assert container["env"] == [{"name": "JOULETRACE_TASK_ID", "value": task_id}]
        assert "command" not in container and "args" not in container
    assert templates["train.GPU_01"]["container"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "limits" not in templates[LONG_ID]["container"]["resources"]  # a CPU task on the GPU machine

    names = [t["name"] for t in manifest["spec"]["templates"]]
    assert len(set(names)) == len(names) and all(len(n) <= 63 and ARGO_NAME.fullmatch(n) for n in names)
    assert templates["Prep_Data"]["name"] == "prep-data" and templates["1st_pass"]["name"] == "t-1st-pass"
    assert templates["eval_A"]["name"] != templates["Eval-A"]["name"]  # both would be eval-a
    assert templates["schedule"]["name"] != "schedule" == manifest["spec"]["entrypoint"]

    metadata = manifest["metadata"]
    assert (
        metadata["generateName"] == "small-test-wf-" and "name" not in metadata and "labels" not in metadata
    )
    assert metadata["annotations"] == {
        "jouletrace.io/workflow-name": "Small_Test WF",
        "jouletrace.io/schedule-algorithm": "energy-heft",
    }


def test_name_namespace_and_hostname_selectors_without_a_platform(tmp_path, argo_schema):
    code, manifest, _ = run(
        tmp_path, small_workflow(), small_schedule(), "--name", "run-7", "--namespace", "argo"
    )
    assert code == 0 and manifest_problems(argo_schema, manifest) == []
    assert manifest["metadata"]["name"] == "run-7" and manifest["metadata"]["namespace"] == "argo"
    assert "generateName" not in manifest["metadata"]
    for task_id, template in templates_by_task(manifest).items():
        assert template["nodeSelector"] == {"kubernetes.io/hostname": PLAN[task_id][0]}


def test_fpga_tasks_ask_for_the_fpga_resource(tmp_path, argo_schema):
    workflow = small_workflow()
    workflow["tasks"][0]["device"] = "fpga"
    platform = small_platform()
    platform["machines"][0]["fpgas"] = ["xilinx_u250"]
    code, manifest, _ = run(tmp_path, workflow, small_schedule(), platform=platform)
    assert code == 0 and manifest_problems(argo_schema, manifest) == []
    resources = templates_by_task(manifest)["1st_pass"]["container"]["resources"]
    assert resources["limits"] == {DEFAULT_FPGA_RESOURCE: "1"}
    assert DEFAULT_FPGA_RESOURCE == "amd.com/xilinx_u200_xdma_201830_1-1542252769"

    custom = "amd.com/xilinx_u250_gen3x16_xdma_shell_4_1-0"
    code, manifest, _ = run(
        tmp_path, workflow, small_schedule(), "--fpga-resource", custom, platform=platform
    )
    assert code == 0
    assert templates_by_task(manifest)["1st_pass"]["container"]["resources"]["limits"] == {custom: "1"}


# ----------------------------------------------------------------------------- bad inputs, exit 2


def _cycle():
    return small_workflow(edges=[*EDGES, (LONG_ID, "1st_pass")]), small_schedule(), None


def _unknown_task():
    schedule = small_schedule()
    schedule["assignments"].append(
        {"task_id": "ghost_T1", "machine_id": "cpu-node-1", "start_seconds": 40, "end_seconds": 41}
    )
    return small_workflow(), schedule, None


def _unknown_machine():
    return small_workflow(), small_schedule(PLAN | {"eval_A": ("cpu-node-9", 30.0, 35.0)}), small_platform()


def _gpu_on_cpu_machine():
    return (
        small_workflow(),
        small_schedule(PLAN | {"train.GPU_01": ("cpu-node-1", 10.0, 30.0)}),
        small_platform(),
    )


def _no_gpu_on_platform():
    return small_workflow(), small_schedule(), small_platform(gpus=0)


def _missing_task():
    return small_workflow(), small_schedule({t: p for t, p in PLAN.items() if t != "eval_A"}), None


def _assigned_twice():
    schedule = small_schedule()
    schedule["assignments"].append(dict(schedule["assignments"][0]))
    return small_workflow(), schedule, None


def _child_before_parent():
    return small_workflow(), small_schedule(PLAN | {"eval_A": ("cpu-node-1", 20.0, 25.0)}), None


def _or_split():
    workflow = small_workflow(
        tasks=["a", "b", "c"], edges=[("a", "choose"), ("choose", "b"), ("choose", "c")]
    )
    workflow["tasks"].append({"id": "choose", "kind": "or_split"})
    for edge in workflow["edges"][1:]:
        edge["probability"] = 0.5
    plan = {"a": ("n1", 0.0, 1.0), "b": ("n1", 1.0, 2.0), "c": ("n1", 1.0, 2.0)}
    return workflow, small_schedule(plan), None


BAD = {
    "cycle": (_cycle, "WF.json: the tasks have a cycle: "),
    "unknown task": (_unknown_task, "S.json: assignments[7] names task 'ghost_T1', which"),
    "unknown machine": (_unknown_machine, "on machine 'cpu-node-9', which"),
    "GPU task on a CPU machine": (
        _gpu_on_cpu_machine,
        "puts GPU task 'train.GPU_01' on machine 'cpu-node-1'",
    ),
    "platform without GPU": (_no_gpu_on_platform, "which has no GPU in"),
    "missing task": (_missing_task, "S.json: no assignment for task 'eval_A'"),
    "assigned twice": (_assigned_twice, "assigns task '1st_pass' again (first in assignments[0])"),
    "child before parent": (_child_before_parent, "task 'eval_A' starts at 20 s, before its parent"),
    "OR-split": (_or_split, "has OR-split/OR-join vertices (choose)"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, case):
    build, expected = BAD[case]
    workflow, schedule, platform = build()
    code, manifest, target = run(tmp_path, workflow, schedule, platform=platform)
    err = capsys.readouterr().err
    assert code == 2 and manifest is None and not target.exists()
    assert len(err.strip().splitlines()) == 1 and err.startswith("jouletrace argo-workflow: error: ")
    assert expected in err
    if case == "cycle":
        cycle = err.split("cycle: ")[1].strip().split(" -> ")
        assert cycle[0] == cycle[-1] and all(
            (a, b) in [*EDGES, (LONG_ID, "1st_pass")] for a, b in pairwise(cycle)
        )


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--name", "Run_7"], "--name 'Run_7': use at most 63 lower-case"),
        (["--namespace", "x" * 64], "--namespace"),
        (["--fpga-resource", "fpga"], "--fpga-resource 'fpga': an extended resource name is DOMAIN/NAME"),
    ],
)
def test_bad_options_exit_2(tmp_path, capsys, extra, expected):
    code, manifest, target = run(tmp_path, small_workflow(), small_schedule(), *extra)
    assert code == 2 and not target.exists()
    assert expected in capsys.readouterr().err


def test_malformed_files_name_the_file(tmp_path, capsys):
    (tmp_path / "WF.json").write_text('{"tasks": [{"work_seconds": 1}], "edges": []}')
    args = [
        "argo-workflow",
        "--workflow",
        str(tmp_path / "WF.json"),
        "--schedule",
        str(tmp_path / "none.json"),
    ]
    out = tmp_path / "w.yaml"
    assert main([*args, "--image", "busybox", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'WF.json'}: not a workflow (WF.json) file" in err and not out.exists()
    (tmp_path / "WF.json").write_text(json.dumps(small_workflow()))
    assert main([*args, "--image", "busybox", "--out", str(out)]) == 2
    assert "none.json (--schedule): no such file" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------------- the validation helper


def test_the_validation_helper_rejects_wrong_manifests(tmp_path, argo_schema):
    code, good, _ = run(tmp_path, small_workflow(), small_schedule(), platform=small_platform())
    assert code == 0 and manifest_problems(argo_schema, good) == []

    def broken(change):
        manifest = copy.deepcopy(good)
        change(manifest)
        return manifest_problems(argo_schema, manifest)

    templates = lambda m: m["spec"]["templates"]  # noqa: E731
    assert broken(lambda m: templates(m)[1].pop("name"))  # Argo requires it; its schema does not
    assert broken(lambda m: templates(m)[1].update(nodeSelector=[{"kubernetes.io/hostname": "n"}]))
    assert broken(lambda m: templates(m)[1]["container"]["env"][0].pop("name"))
    assert broken(lambda m: templates(m)[1]["container"].pop("image"))
    assert broken(lambda m: templates(m)[1]["metadata"]["annotations"].update({"jouletrace.io/priority": 3}))
    assert broken(lambda m: templates(m)[0]["dag"]["tasks"][0].pop("name"))
    assert broken(lambda m: templates(m)[0]["dag"]["tasks"][1].update(dependencies=["nope"]))
    assert broken(lambda m: templates(m)[0]["dag"]["tasks"][1].update(template="nope"))
    assert broken(lambda m: m.update(kind="CronWorkflow"))
    assert broken(lambda m: m["spec"].update(entrypoint="main"))


# ------------------------------------------------------------------- a real WfInstances workflow


def wfinstances_to_wf_json(doc: dict) -> dict:
    """WF.json of a WfInstances file: WfFormat 1.5 (workflow.specification.tasks + workflow.execution.tasks)
    or the older layout (workflow.tasks with runtimes and parents)."""
    body = doc["workflow"]
    specification = body.get("specification", body)["tasks"]
    executed = {t["id"]: t for t in body.get("execution", {}).get("tasks", [])}
    tasks, edges = [], {}
    for task in specification:
        task_id = task.get("id", task.get("name"))
        timing = executed.get(task_id, task)
        runtime = timing.get("runtimeInSeconds", timing.get("runtime"))
        tasks.append({"id": task_id, "work_seconds": float(runtime)})
        for parent in task.get("parents", []):
            edges[(parent, task_id)] = None
        for child in task.get("children", []):
            edges[(task_id, child)] = None
    return {
        "name": doc["name"],
        "tasks": tasks,
        "edges": [{"source": s, "target": t} for s, t in edges],
    }


def round_robin_schedule(workflow: dict, machines: list[str]) -> dict:
    """Tasks in topological order, machine k % len(machines), one task at a time per machine, each starting
    when its parents and its machine are done: a consistent schedule made by hand."""
    work = {t["id"]: t["work_seconds"] for t in workflow["tasks"]}
    parents = {t: [] for t in work}
    for e in workflow["edges"]:
        parents[e["target"]].append(e["source"])
    order, done = [], set()
    while len(order) < len(work):
        ready = [t for t in work if t not in done and all(p in done for p in parents[t])]
        order += ready
        done |= set(ready)
    free = dict.fromkeys(machines, 0.0)
    end, assignments = {}, []
    for k, task in enumerate(order):
        machine = machines[k % len(machines)]
        start = max([free[machine], *(end[p] for p in parents[task])])
        end[task] = free[machine] = start + work[task]
        assignments.append(
            {"task_id": task, "machine_id": machine, "start_seconds": start, "end_seconds": end[task]}
        )
    return {"algorithm": "round-robin (test)", "assignments": assignments}


@pytest.fixture(scope="module")
def montage(shared_data):
    doc = json.loads((shared_data / "wfinstances" / MONTAGE).read_text())
    workflow = wfinstances_to_wf_json(doc)
    return workflow, round_robin_schedule(workflow, ["node-a", "node-b", "node-c"])


def test_montage_from_wfinstances_validates_and_round_trips(tmp_path, argo_schema, montage, capsys):
    workflow, schedule = montage
    assert len(workflow["tasks"]) == 58
    code, manifest, _ = run(tmp_path, workflow, schedule)
    assert code == 0 and manifest_problems(argo_schema, manifest) == []
    edges = {(e["source"], e["target"]) for e in workflow["edges"]}
    assert f"58 tasks on 3 machines, {len(edges)} dependencies" in capsys.readouterr().out

    parsed = parse_manifest(manifest)
    assert set(parsed.edges) == edges and len(parsed.edges) == len(edges)
    assert parsed.placement == {a["task_id"]: a["machine_id"] for a in schedule["assignments"]}
    assert_priorities_follow_starts(parsed)
    templates = templates_by_task(manifest)
    assert templates["mProject_ID0000001"]["name"] == "mproject-id0000001"
    for task_id, machine in parsed.placement.items():
        assert templates[task_id]["nodeSelector"] == {"kubernetes.io/hostname": machine}


def test_keep_machine_order_adds_waits_and_parses_back_to_the_same_dag(tmp_path, argo_schema, montage):
    workflow, schedule = montage
    code, manifest, _ = run(tmp_path, workflow, schedule, "--keep-machine-order")
    assert code == 0 and manifest_problems(argo_schema, manifest) == []
    parsed = parse_manifest(manifest)
    assert set(parsed.edges) == {(e["source"], e["target"]) for e in workflow["edges"]}
    assert parsed.waits_for  # one task at a time per machine: most tasks wait for their predecessor
    for task, before in parsed.waits_for.items():
        assert parsed.placement[task] == parsed.placement[before]
        assert parsed.planned[before][1] <= parsed.planned[task][0]
        assert (before, task) not in parsed.edges
    # every machine's tasks now form one chain in planned order
    for machine in {"node-a", "node-b", "node-c"}:
        on = sorted((s, t) for t, (s, _) in parsed.planned.items() if parsed.placement[t] == machine)
        for (_, first), (_, second) in pairwise(on):
            assert parsed.waits_for.get(second) == first or (first, second) in parsed.edges


# ------------------------------------------------------------------------------------------ units


def test_argo_names_are_unique_valid_and_independent_of_order():
    ids = ["individuals_ID0000001", "A_1", "a-1", "a.1", "9lives", "___", "schedule", "x" * 70, "Ok"]
    names = argo_names(ids)
    assert names == argo_names(list(reversed(ids)))
    assert len(set(names.values())) == len(ids)
    assert all(ARGO_NAME.fullmatch(n) and len(n) <= 63 for n in names.values())
    assert names["individuals_ID0000001"] == "individuals-id0000001" and names["Ok"] == "ok"
    assert names["9lives"] == "t-9lives" and names["___"] == "t"
    assert names["schedule"].startswith("schedule-") and names["x" * 70].startswith("xxx")
    assert len({names["A_1"], names["a-1"], names["a.1"]}) == 3


def test_priorities_rank_starts_densely_with_ties_shared():
    plan = {"a": 0.0, "b": 5.0, "c": 5.0, "d": 9.5}
    assigned = {t: Assignment(t, "m", s, s + 1) for t, s in plan.items()}
    assert start_priorities(assigned) == {"a": 3, "b": 2, "c": 2, "d": 1}


def test_parse_refuses_manifests_it_did_not_write():
    foreign = {
        "spec": {
            "entrypoint": "d",
            "templates": [
                {"name": "d", "dag": {"tasks": [{"name": "a", "template": "a"}]}},
                {"name": "a", "container": {"image": "busybox"}},
            ],
        }
    }
    with pytest.raises(ValueError, match="no jouletrace.io/task-id annotation"):
        parse_manifest(foreign)
    with pytest.raises(ValueError, match="not an Argo Workflow with a DAG entrypoint"):
        parse_manifest({"spec": {"entrypoint": "d", "templates": []}})
