"""Redis faults on a Sentinel-managed primary/replica set: one kind a module; what they share is in common.py."""
