"""Budget-constrained allocation and energy-aware scheduling (later issues)."""
