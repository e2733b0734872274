"""Dagster definitions, resources, assets and checks, and the jouletrace CLI."""
