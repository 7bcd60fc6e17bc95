"""Protocol clients: Redis/Sentinel, ZooKeeper, container engine, Kubernetes, SSH, HTTP/TCP health, Toxiproxy.

No fault logic and nothing of the engine: injectors and the reference stack build on them.
"""
