"""`python -m chaosproxy serve [--host 127.0.0.1] [--port 8474] [--config proxies.json]`.

Prints `listening on HOST:PORT` as its first line once the API answers (with the port chosen when
`--port 0`), then serves until SIGTERM or Ctrl-C, when it closes every proxy and exits 0.
Exit 2: bad arguments or configuration file; exit 1: the API address cannot be bound.
`--host` is an IP address or a host name (a non-loopback one is warned about), `--port` 0-65535, and
`--config` a regular JSON file of at most 1 MB (a FIFO or a device is refused, never read).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import stat
import sys
from pathlib import Path

from aiohttp import web

from chaosproxy.api import ProxyCollection, build_app
from chaosproxy.toxics import ApiError

log = logging.getLogger("chaosproxy")
MAX_CONFIG_BYTES = 1_000_000
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _port(text: str) -> int:
    if not re.fullmatch(r"\s*[+-]?\d{1,6}\s*", text) or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: expected a port 0-65535 (0 = any free), e.g. 8474")
    return int(text)


def _host(text: str) -> str:
    """An IP address, or a host name that is valid (RFC 1123) and not all digits like 999.1.1.1."""
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        labels = text.rstrip(".").split(".")
        if len(text) <= 253 and all(_HOST_LABEL.fullmatch(x) for x in labels) and not labels[-1].isdigit():
            return text
    raise argparse.ArgumentTypeError(f"{text[:40]!r}: not an IP address or host name; use e.g. 127.0.0.1")


def _is_loopback(host: str) -> bool:
    try:
        return host.lower().rstrip(".") == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, assume others can reach it


def _proxy_list(config: object) -> list[object]:
    if not isinstance(config, list):
        raise ValueError(f"expected a JSON array of proxies (like POST /populate), got {type(config).__name__}")
    return config


def read_config(path: Path) -> object:
    """The --config JSON; a FIFO or device is refused before it is opened, and nothing past 1 MB is read."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file (a FIFO, a device or a directory); give a JSON file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"file is {info.st_size:,} bytes; the limit is {MAX_CONFIG_BYTES:,}")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file; give a JSON file")
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"more than {MAX_CONFIG_BYTES:,} bytes; the limit is {MAX_CONFIG_BYTES:,}")
    return json.loads(raw)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaosproxy", description="Toxiproxy-API compatible TCP fault proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Toxiproxy HTTP API and its proxies")
    serve.add_argument("--host", type=_host, default="127.0.0.1", help="API address (default 127.0.0.1, loopback)")
    serve.add_argument("--port", type=_port, default=8474, help="API port (default 8474, Toxiproxy's; 0 = any free)")
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
    if not _is_loopback(args.host):
        log.warning("API bound to %s, not loopback: anyone who reaches it can break your network", args.host)
    config: list[object] | None = None
    if args.config is not None:
        try:
            config = _proxy_list(read_config(args.config))
        except OSError as exc:
            print(f"chaosproxy: {args.config}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except ValueError as exc:  # also UnicodeDecodeError and json.JSONDecodeError
            print(f"chaosproxy: {args.config}: {exc}", file=sys.stderr)
            return 2
    return asyncio.run(serve(args.host, args.port, config))


if __name__ == "__main__":
    sys.exit(main())
