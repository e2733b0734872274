"""Readers of the world: power meters, Argo, Kubernetes, Prometheus (recorded or live)."""
