"""Container faults through the Docker Engine API: one kind a module; what they share is in common.py."""
