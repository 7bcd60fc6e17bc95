"""The stack description contract: targets, instances, health checks, SSH hosts, market hours, the file.

Engine, injectors, drills and the reference stack all import it; it imports nothing of theirs.
"""
