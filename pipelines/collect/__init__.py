"""Collection stage: Argo runs, Kubernetes pods and nodes, power readings."""
