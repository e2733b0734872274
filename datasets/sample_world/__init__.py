"""The sample world: a seeded, synthetic cluster running scientific workflows, recorded as jouletrace reads
a real one (docs/recorded-sources.md), with the exact per-task energy as ground truth."""

from datasets.sample_world.world import SampleWorldSummary, generate

__all__ = ["SampleWorldSummary", "generate"]
