"""Cluster readers: Argo workflows (parsed, live through Hera, requests from templates), Kubernetes pods and
nodes (parsed, live), Prometheus readings and machines, and the recorded folder that stands in for all of
them without a cluster."""
