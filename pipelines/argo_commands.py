"""`jouletrace argo-workflow`: an Argo Workflow running WF.json as S.json places it (docs/scheduling.md)."""

from __future__ import annotations

from pathlib import Path


def add_argo_workflow_command(sub) -> None:
    a = sub.add_parser(
        "argo-workflow",
        help="write an Argo Workflow (YAML) running WF.json's tasks on the machines S.json gives them",
    )
    a.add_argument("--workflow", required=True, help="WF.json: the tasks and their dependencies")
    a.add_argument("--schedule", required=True, help="S.json: the machine and planned times of each task")
    a.add_argument(
        "--image", required=True, help="container image every task runs (WF.json says nothing of commands)"
    )
    a.add_argument(
        "--platform",
        help="P.json: node labels to select each machine by, and checks that machines exist and have the "
        "GPU/FPGA their tasks need (default: none; kubernetes.io/hostname = machine id)",
    )
    a.add_argument("--namespace", help="namespace of the Workflow (default: the one it is submitted to)")
    a.add_argument("--name", help="Workflow name (default: generateName from WF.json's name)")
    a.add_argument(
        "--fpga-resource",
        help="extended resource an FPGA task asks for, as `kubectl describe node` shows it "
        "(default: the AMD/Xilinx device plugin's example amd.com/xilinx_u200_xdma_201830_1-1542252769)",
    )
    a.add_argument(
        "--keep-machine-order",
        action="store_true",
        help="also make each task wait for the task planned before it on the same core of its machine",
    )
    a.add_argument("--out", required=True, help="workflow.yaml to write")
    a.set_defaults(run=cmd_argo_workflow)


def _read(path: str, what: str, reader, option: str):
    """Read an input file, turning a malformed one into a ValueError naming the file."""
    from allocate.io import read_json

    data = read_json(path, option)
    try:
        return reader(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a {what} file ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(str(Path(path))) else f"{path}: {message}") from None


def cmd_argo_workflow(args) -> int:
    from allocate.io import workflow_from_json
    from allocate.scheduling.argo import (
        DEFAULT_FPGA_RESOURCE,
        InputFiles,
        parse_manifest,
        workflow_manifest,
        write_manifest_yaml,
    )
    from allocate.scheduling.platform import platform_from_json
    from allocate.scheduling.schedule import schedule_from_json

    workflow = _read(args.workflow, "workflow (WF.json)", workflow_from_json, "--workflow")
    schedule = _read(args.schedule, "schedule (S.json)", schedule_from_json, "--schedule")
    platform = (
        _read(args.platform, "platform (P.json)", platform_from_json, "--platform") if args.platform else None
    )
    manifest = workflow_manifest(
        workflow,
        schedule,
        args.image,
        platform=platform,
        namespace=args.namespace,
        name=args.name,
        fpga_resource=args.fpga_resource or DEFAULT_FPGA_RESOURCE,
        keep_machine_order=args.keep_machine_order,
        files=InputFiles(args.workflow, args.schedule, args.platform or "P.json"),
    )
    write_manifest_yaml(manifest, Path(args.out))
    parsed = parse_manifest(manifest)
    machines = set(parsed.placement.values())
    devices = list(parsed.devices.values())
    order = f", {len(parsed.waits_for)} more to keep each machine's order" if args.keep_machine_order else ""
    print(
        f"wrote {args.out}: {len(parsed.task_ids)} tasks on {len(machines)} machines, {len(parsed.edges)} "
        f"dependencies{order}, {devices.count('gpu')} GPU and {devices.count('fpga')} FPGA tasks "
        f"(schedule {schedule.algorithm})"
    )
    return 0
