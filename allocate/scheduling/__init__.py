"""Energy-aware scheduling of workflows on heterogeneous platforms (docs/scheduling.md)."""

# The list-scheduling algorithms of schedulers.py, by name: here so that the command line can offer them
# without loading the schedulers.
ALGORITHMS = ("heft", "min-energy", "energy-budget", "ecs", "budget-heft", "merge", "deadline", "weighted")
