"""Network faults on named links through the Toxiproxy API: a toxic a module, and `network.down`; see common.py."""
