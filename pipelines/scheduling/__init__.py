"""Scheduling stage: the evaluation of the schedulers on the trace dataset (docs/scheduling.md)."""
