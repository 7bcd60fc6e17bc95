"""The fault matrix's fixtures: its stacks (started once per module, on first use), drivers and results."""

from tests.faultmatrix.harness import containers_stack, drivers, ha_stack, kube_stack, results

__all__ = ["containers_stack", "drivers", "ha_stack", "kube_stack", "results"]
