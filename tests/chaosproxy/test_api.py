"""The Toxiproxy 2.x HTTP API of the chaosproxy server, over plain HTTP: status codes and JSON shapes."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.chaosproxy.support import connect, start_server, stop_server
from tests.support.helpers import ROOT, free_port

_UNSET: Any = object()


class Answer(NamedTuple):
    status: int
    body: Any  # decoded JSON, or the raw bytes when the answer is not JSON
    content_type: str


class Api:
    """Raw HTTP to one server: every answer is returned as is, whatever its status."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self.host, self.port = parts.hostname, parts.port

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = _UNSET,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        data = raw if raw is not None else None if body is _UNSET else json.dumps(body).encode()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            payload = resp.read()
            content_type = resp.getheader("Content-Type", "")
        finally:
            conn.close()
        decoded: Any = json.loads(payload) if content_type.startswith("application/json") else payload
        return Answer(resp.status, decoded, content_type)


@pytest.fixture(scope="module")
def api(chaosproxy: str) -> Api:
    return Api(chaosproxy)


@pytest.fixture(autouse=True)
def no_proxies_left(api: Api) -> Iterator[None]:
    """Each test starts and ends with an empty server."""
    assert api("GET", "/proxies").body == {}
    yield
    for name in api("GET", "/proxies").body:
        assert api("DELETE", f"/proxies/{name}").status == 204


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def accepts(listen: str) -> bool:
    try:
        connect(listen, timeout=2).close()
    except ConnectionRefusedError:
        return False
    return True


def echoes(listen: str) -> bool:
    with connect(listen) as sock:
        sock.sendall(b"ping")
        got = b""
        while len(got) < 4 and (chunk := sock.recv(10)):
            got += chunk
        return got == b"ping"


def create(api: Api, name: str, upstream: str, **extra: Any) -> dict[str, Any]:
    answer = api("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0", "upstream": upstream, **extra})
    assert answer.status == 201, answer
    return dict(answer.body)


def add_latency(api: Api, proxy: str, **extra: Any) -> Answer:
    return api("POST", f"/proxies/{proxy}/toxics", {"type": "latency", "attributes": {"latency": 10}, **extra})


# --- version, proxies ----------------------------------------------------------------------------------------


def test_version_answers_json(api: Api) -> None:
    answer = api("GET", "/version")
    assert answer.status == 200 and answer.content_type.startswith("application/json")
    assert isinstance(answer.body["version"], str) and answer.body["version"]


def test_unknown_route_is_a_json_404(api: Api) -> None:
    answer = api("GET", "/no/such/route")
    assert answer.status == 404 and answer.body["status"] == 404


def test_create_proxy_reports_the_chosen_port_which_then_proxies(api: Api, echo: str) -> None:
    answer = api("POST", "/proxies", {"name": "web", "listen": "127.0.0.1:0", "upstream": echo})
    assert answer.status == 201 and answer.content_type.startswith("application/json")
    assert set(answer.body) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert answer.body["name"] == "web" and answer.body["upstream"] == echo
    assert answer.body["enabled"] is True and answer.body["toxics"] == []
    listen = answer.body["listen"]
    assert listen.startswith("127.0.0.1:") and port_of(listen) != 0
    assert echoes(listen)


def test_create_disabled_proxy_does_not_listen(api: Api, echo: str) -> None:
    listen = f"127.0.0.1:{free_port()}"
    answer = api("POST", "/proxies", {"name": "idle", "listen": listen, "upstream": echo, "enabled": False})
    assert answer.status == 201 and answer.body["enabled"] is False
    assert not accepts(listen)


def test_create_duplicate_name_is_a_conflict(api: Api, echo: str) -> None:
    first = create(api, "twice", echo)
    answer = api("POST", "/proxies", {"name": "twice", "listen": "127.0.0.1:0", "upstream": echo})
    assert answer.status == 409
    assert answer.body == {"error": "proxy already exists", "status": 409}
    assert api("GET", "/proxies/twice").body == first  # the first one is untouched


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        pytest.param({"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}, None, id="missing-name"),
        pytest.param({"name": "x", "listen": "127.0.0.1:0"}, None, id="missing-upstream"),
        pytest.param({"name": "x", "upstream": "no-port"}, None, id="bad-upstream-address"),
        pytest.param({"name": "x", "upstream": "127.0.0.1:1", "enabled": "yes"}, None, id="enabled-not-bool"),
        pytest.param(["x"], None, id="not-an-object"),
        pytest.param(_UNSET, b'{"name": "x",', id="bad-json"),
    ],
)
def test_create_refuses_bad_bodies(api: Api, body: Any, raw: bytes | None) -> None:
    answer = api("POST", "/proxies", body, raw=raw)
    assert answer.status == 400, answer
    assert answer.body["status"] == 400 and answer.body["error"]
    assert api("GET", "/proxies").body == {}


def test_list_and_show_proxies_with_their_toxics(api: Api, echo: str) -> None:
    one, two = create(api, "one", echo), create(api, "two", echo)
    toxic = add_latency(api, "two").body
    listed = api("GET", "/proxies")
    assert listed.status == 200
    assert listed.body == {"one": one, "two": {**two, "toxics": [toxic]}}
    shown = api("GET", "/proxies/two")
    assert shown.status == 200 and shown.body == listed.body["two"]


def test_unknown_proxy_is_not_found(api: Api) -> None:
    not_found = {"error": "proxy not found", "status": 404}
    assert api("GET", "/proxies/ghost")[:2] == (404, not_found)
    assert api("POST", "/proxies/ghost", {"enabled": False}).body == not_found
    assert api("DELETE", "/proxies/ghost").body == not_found
    assert api("GET", "/proxies/ghost/toxics").body == not_found


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_update_disables_and_enables_a_proxy(api: Api, echo: str, method: str) -> None:
    listen = create(api, "toggled", echo)["listen"]
    answer = api(method, "/proxies/toggled", {"enabled": False})
    assert answer.status == 200 and answer.body["enabled"] is False and answer.body["listen"] == listen
    assert not accepts(listen)
    answer = api(method, "/proxies/toggled", {"enabled": True})
    assert answer.status == 200 and answer.body["enabled"] is True and answer.body["listen"] == listen
    assert echoes(listen)


def test_refused_update_changes_nothing(api: Api, echo: str) -> None:
    before = create(api, "steady", echo)
    answer = api("POST", "/proxies/steady", {"listen": "no-port"})
    assert answer.status == 400
    assert api("GET", "/proxies/steady").body == before
    assert echoes(before["listen"])  # still up: a refused request must not take the proxy down


def test_update_moves_a_proxy_to_a_new_listen_address(api: Api, echo: str) -> None:
    old = create(api, "moved", echo)["listen"]
    new = f"127.0.0.1:{free_port()}"
    answer = api("POST", "/proxies/moved", {"listen": new})
    assert answer.status == 200 and answer.body["listen"] == new and answer.body["enabled"] is True
    assert echoes(new)
    assert not accepts(old)


def test_delete_proxy_stops_listening(api: Api, echo: str) -> None:
    listen = create(api, "doomed", echo)["listen"]
    assert accepts(listen)
    answer = api("DELETE", "/proxies/doomed")
    assert answer.status == 204 and answer.body == b""
    assert not accepts(listen)
    assert api("GET", "/proxies/doomed").status == 404
    assert api("DELETE", "/proxies/doomed").status == 404


# --- toxics --------------------------------------------------------------------------------------------------


def test_toxic_create_fills_in_toxiproxy_defaults(api: Api, echo: str) -> None:
    create(api, "p", echo)
    answer = add_latency(api, "p")
    assert answer.status == 200
    assert answer.body == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 10, "jitter": 0},
    }
    upstream = add_latency(api, "p", stream="upstream")
    assert upstream.status == 200 and upstream.body["name"] == "latency_upstream"


def test_toxic_create_refusals(api: Api, echo: str) -> None:
    create(api, "p", echo)
    assert add_latency(api, "p").status == 200
    duplicate = add_latency(api, "p")
    assert duplicate.status == 409 and duplicate.body == {"error": "toxic already exists", "status": 409}
    bad_type = api("POST", "/proxies/p/toxics", {"type": "gremlins"})
    assert bad_type.status == 400 and bad_type.body == {"error": "invalid toxic type", "status": 400}
    bad_stream = add_latency(api, "p", name="sideways", stream="sideways")
    assert bad_stream.status == 400 and bad_stream.body["status"] == 400
    negative = api("POST", "/proxies/p/toxics", {"type": "latency", "name": "neg", "attributes": {"latency": -1}})
    assert negative.status == 400 and negative.body["status"] == 400
    toxicity = add_latency(api, "p", name="too_toxic", toxicity=1.5)
    assert toxicity.status == 400
    bad_json = api("POST", "/proxies/p/toxics", raw=b"{nope")
    assert bad_json.status == 400
    unknown = add_latency(api, "ghost")
    assert unknown.status == 404 and unknown.body == {"error": "proxy not found", "status": 404}
    assert [t["name"] for t in api("GET", "/proxies/p/toxics").body] == ["latency_downstream"]


def test_toxic_list_show_update_and_delete(api: Api, echo: str) -> None:
    create(api, "p", echo)
    toxic = add_latency(api, "p", name="lag").body
    listed = api("GET", "/proxies/p/toxics")
    assert listed.status == 200 and listed.body == [toxic]
    shown = api("GET", "/proxies/p/toxics/lag")
    assert shown.status == 200 and shown.body == toxic

    updated = api("POST", "/proxies/p/toxics/lag", {"attributes": {"jitter": 5}})
    assert updated.status == 200 and updated.body["attributes"] == {"latency": 10, "jitter": 5}
    patched = api("PATCH", "/proxies/p/toxics/lag", {"toxicity": 0.5, "attributes": {"latency": 20}})
    assert patched.status == 200
    assert patched.body == {**toxic, "toxicity": 0.5, "attributes": {"latency": 20, "jitter": 5}}
    assert api("GET", "/proxies/p/toxics/lag").body == patched.body
    assert api("POST", "/proxies/p/toxics/lag", {"attributes": {"latency": -5}}).status == 400
    assert api("GET", "/proxies/p/toxics/lag").body == patched.body  # a refused update changes nothing

    deleted = api("DELETE", "/proxies/p/toxics/lag")
    assert deleted.status == 204 and deleted.body == b""
    not_found = {"error": "toxic not found", "status": 404}
    assert api("GET", "/proxies/p/toxics/lag")[:2] == (404, not_found)
    assert api("POST", "/proxies/p/toxics/lag", {"toxicity": 1.0}).body == not_found
    assert api("DELETE", "/proxies/p/toxics/lag").body == not_found
    assert api("GET", "/proxies/p/toxics").body == []


# --- populate, reset -----------------------------------------------------------------------------------------


def test_populate_creates_and_keeps_unchanged_proxies(api: Api, echo: str) -> None:
    config = [
        {"name": "alpha", "listen": f"127.0.0.1:{free_port()}", "upstream": echo},
        {"name": "beta", "listen": f"127.0.0.1:{free_port()}", "upstream": echo},
    ]
    answer = api("POST", "/populate", config)
    assert answer.status == 201
    assert [(p["name"], p["listen"], p["enabled"]) for p in answer.body["proxies"]] == [
        (c["name"], c["listen"], True) for c in config
    ]
    with connect(config[0]["listen"]) as open_conn:
        open_conn.sendall(b"1")
        assert open_conn.recv(10) == b"1"
        again = api("POST", "/populate", config)
        assert again.status == 201 and again.body == answer.body
        open_conn.sendall(b"2")  # the proxy was kept, not replaced: its connection lives on
        assert open_conn.recv(10) == b"2"
    assert set(api("GET", "/proxies").body) == {"alpha", "beta"}


def test_populate_replaces_a_proxy_whose_upstream_changed(api: Api, echo: str, source: str) -> None:
    listen = f"127.0.0.1:{free_port()}"
    api("POST", "/populate", [{"name": "alpha", "listen": listen, "upstream": source}])
    answer = api("POST", "/populate", [{"name": "alpha", "listen": listen, "upstream": echo}])
    assert answer.status == 201 and answer.body["proxies"][0]["upstream"] == echo
    assert echoes(listen)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "solo", "upstream": "127.0.0.1:1"}, id="not-an-array"),
        pytest.param([{"name": "fine", "upstream": "127.0.0.1:1"}, {"name": "broken"}], id="invalid-entry"),
        pytest.param([{"name": "fine", "upstream": "127.0.0.1:1"}, "text"], id="entry-not-an-object"),
    ],
)
def test_populate_refuses_bad_input_and_creates_nothing(api: Api, body: Any) -> None:
    answer = api("POST", "/populate", body)
    assert answer.status == 400 and answer.body["status"] == 400
    assert api("GET", "/proxies").body == {}


def test_reset_removes_all_toxics_and_enables_every_proxy(api: Api, echo: str) -> None:
    one, two = create(api, "one", echo), create(api, "two", echo)
    assert add_latency(api, "one").status == 200
    assert add_latency(api, "two", stream="upstream").status == 200
    assert api("POST", "/proxies/two", {"enabled": False}).status == 200
    answer = api("POST", "/reset")
    assert answer.status == 204 and answer.body == b""
    assert api("GET", "/proxies").body == {"one": one, "two": two}  # enabled, no toxics, same addresses
    assert echoes(one["listen"]) and echoes(two["listen"])


# --- browsers, command line ----------------------------------------------------------------------------------


def test_browsers_are_refused(api: Api, echo: str) -> None:
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"}
    assert api("GET", "/version", headers=browser).status == 403
    refused = api("POST", "/proxies", {"name": "csrf", "listen": "127.0.0.1:0", "upstream": echo}, headers=browser)
    assert refused.status == 403
    assert api("GET", "/proxies").body == {}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "No such file", id="missing-file"),
        pytest.param("[{", "", id="bad-json"),
        pytest.param('{"name": "x", "upstream": "127.0.0.1:1"}', "expected a JSON array", id="not-an-array"),
        pytest.param('[{"name": "x"}]', "missing required field: upstream", id="invalid-entry"),
    ],
)
def test_serve_refuses_a_bad_config_file_with_exit_2(tmp_path: Path, content: str | None, message: str) -> None:
    config = tmp_path / "proxies.json"
    if content is not None:
        _write(config, content)
    result = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "serve", "--port", "0", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result
    assert result.stdout == ""  # never claimed to be listening
    assert "chaosproxy:" in result.stderr and message in result.stderr, result.stderr


def test_serve_refuses_a_config_whose_listen_address_is_taken(tmp_path: Path, echo: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        config = _write(tmp_path / "proxies.json", json.dumps([{"name": "x", "listen": listen, "upstream": echo}]))
        result = subprocess.run(
            [sys.executable, "-m", "chaosproxy", "serve", "--port", "0", "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2, result
    assert "cannot listen" in result.stderr, result.stderr


def test_serve_creates_the_configured_proxies_at_start(tmp_path: Path, echo: str) -> None:
    listen = f"127.0.0.1:{free_port()}"
    config = [
        {"name": "fixed", "listen": listen, "upstream": echo},
        {"name": "spare", "listen": "127.0.0.1:0", "upstream": echo, "enabled": False},
    ]
    proc, url = start_server(
        "--config", str(_write(tmp_path / "proxies.json", json.dumps(config))), log=tmp_path / "server.log"
    )
    try:
        proxies = Api(url)("GET", "/proxies")
        assert proxies.status == 200
        assert {name: (p["upstream"], p["enabled"]) for name, p in proxies.body.items()} == {
            "fixed": (echo, True),
            "spare": (echo, False),
        }
        assert proxies.body["fixed"]["listen"] == listen
        assert echoes(listen)
    finally:
        assert stop_server(proc) == 0
    assert not accepts(listen)  # closed with the server
