"""An embedded server speaking the Toxiproxy 2.x HTTP API: TCP proxies with toxics, on loopback.

A separate program (`python -m chaosproxy serve`); it imports nothing from the engine. Users with a
real Toxiproxy point their stack description at it instead; the same experiments run unchanged.
"""

from chaosproxy.api import VERSION, ProxyCollection, build_app
from chaosproxy.proxy import Proxy
from chaosproxy.toxics import ApiError, Toxic, ToxicConfig

__all__ = ["VERSION", "ApiError", "Proxy", "ProxyCollection", "Toxic", "ToxicConfig", "build_app"]
