"""Allocation stage: budget-constrained allocation evaluated on synthetic workloads and the traced workflows."""
