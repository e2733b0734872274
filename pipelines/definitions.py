"""Dagster entry point (`dagster dev -w workspace.yaml`); paths come from JOULETRACE_DATA / JOULETRACE_RECORDED."""

from pipelines.build import build_definitions
from pipelines.settings import Settings

defs = build_definitions(Settings.from_env())
