"""ZooKeeper faults on an ensemble and on its clients' sessions: one kind a module; shared code in common.py."""
