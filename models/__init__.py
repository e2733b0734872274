"""Task-energy regressors (later issues)."""
