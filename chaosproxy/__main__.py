"""`python -m chaosproxy serve [--host 127.0.0.1] [--port 8474] [--config proxies.json]`.

Prints `listening on HOST:PORT` as its first line once the API answers (with the port chosen when
`--port 0`), then serves until SIGTERM or Ctrl-C, when it closes every proxy and exits 0.
Exit 2: bad arguments or configuration file; exit 1: the API address cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import socket
import sys
from pathlib import Path

from aiohttp import web

from chaosproxy.api import ProxyCollection, build_app
from chaosproxy.toxics import ApiError

log = logging.getLogger("chaosproxy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaosproxy", description="Toxiproxy-API compatible TCP fault proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Toxiproxy HTTP API and its proxies")
    serve.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1, loopback)")
    serve.add_argument("--port", type=int, default=8474, help="API port (default 8474, Toxiproxy's; 0 = any free)")
    serve.add_argument("--config", type=Path, help="JSON array of proxies to create at start (like /populate)")
    return parser


async def serve(host: str, port: int, config: list[object] | None) -> int:
    collection = ProxyCollection()
    if config is not None:
        try:
            await collection.populate(config)
        except ApiError as exc:
            await collection.close()
            print(f"chaosproxy: configuration refused: {exc.message}", file=sys.stderr)
            return 2
    runner = web.AppRunner(build_app(collection), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        await collection.close()
        await runner.cleanup()
        print(f"chaosproxy: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    await web.SockSite(runner, sock).start()
    print(f"listening on {host}:{sock.getsockname()[1]}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping: closing %d proxies", len(collection.proxies))
    await collection.close()
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not ipaddress.ip_address(args.host if args.host != "localhost" else "127.0.0.1").is_loopback:
        log.warning("API bound to %s, not loopback: anyone who reaches it can break your network", args.host)
    config = None
    if args.config is not None:
        try:
            config = json.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"chaosproxy: {args.config}: {exc}", file=sys.stderr)
            return 2
    return asyncio.run(serve(args.host, args.port, config))


if __name__ == "__main__":
    sys.exit(main())
