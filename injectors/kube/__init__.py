"""Kubernetes faults (`pod.delete`, `deployment.scale`, `node.cordon`, `node.drain`): a kind a module, see common.py."""
