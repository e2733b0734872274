"""Energy-aware scheduling of workflows on heterogeneous platforms (docs/scheduling.md)."""
