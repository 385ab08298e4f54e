"""The request guard (`ui/security.py`) in front of the real studio app, over real HTTP.

A local listener stands in for a host on the internet: Gradio's own SSRF filter is told that
loopback is public, so that without the guard the studio *would* connect to it; the tests then
assert that it received nothing.
"""

from __future__ import annotations

import asyncio
import http.client
import http.server
import json
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from servers import free_port, serve_in_process, start_server, stop

ROOT = Path(__file__).resolve().parent.parent
PATH_PARAM = re.compile(r"\{(\w+):path\}|\{(\w*(?:path|url)\w*)(?::\w+)?\}")
ANY_PARAM = re.compile(r"\{[^}]+\}")
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/", "/gradio_api/proxy=", "/file=", "/file/", "/proxy=")
ASSET_ROUTES = ("/assets/", "/static/", "/svelte/")


def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data, resp.headers


class Listener(http.server.ThreadingHTTPServer):
    """Counts every connection it accepts (a TLS hello counts too) and every path asked of it."""

    daemon_threads = True

    def __init__(self):
        self.connections: list = []
        self.paths: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"\x89PNG")

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def get_request(self):
        conn, addr = super().get_request()
        self.connections.append(addr)
        return conn, addr


@pytest.fixture
def listener():
    server = Listener()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def loopback_is_public(monkeypatch, listener):
    """Gradio's SSRF filter (safehttpx) refuses loopback; make it treat the listener as an internet host."""
    import safehttpx

    monkeypatch.setattr(safehttpx, "is_public_ip", lambda ip: True)
    # the stand-in works: a plain safehttpx fetch now reaches the listener
    asyncio.run(safehttpx.get(f"http://127.0.0.1:{listener.server_address[1]}/control.png"))
    assert listener.paths == ["/control.png"]
    listener.paths.clear()
    listener.connections.clear()
    return listener


@pytest.fixture(scope="module")
def served(tiny_vault, tmp_path_factory):
    """The real studio app, launched with `launch_kwargs` (so with the real middleware stack)."""
    data = tmp_path_factory.mktemp("security-data")
    with serve_in_process(tiny_vault, data) as s:
        s.studio.settings.outputs_dir.mkdir(parents=True, exist_ok=True)
        output = s.studio.settings.outputs_dir / "legit-render.mp4"
        output.write_bytes(b"\x00\x00\x00\x18ftypmp42 a rendered clip")
        yield {"studio": s.studio, "blocks": s.app, "port": s.port, "output": output}


def url_forms(target: str) -> dict[str, str]:
    """The ways a request path can name `target` (host:port/x.png) as a URL."""
    return {
        "http": f"http://{target}",
        "https": f"https://{target}",
        "upper-case scheme": f"HTTP://{target}",
        "percent-encoded": quote(f"http://{target}", safe=""),
        "double-encoded": quote(quote(f"http://{target}", safe=""), safe=""),
        "encoded letter": f"%68ttp://{target}",
        "protocol-relative": f"//{target}",
        "backslashes": f"http:\\\\{target}",
        "file scheme": "file:///etc/passwd",
    }


def sse_until_done(port: int, session_hash: str, timeout: float = 60) -> None:
    """Follow the queue's event stream until the session's event completes (drives the old code's fetch)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", f"/gradio_api/queue/data?session_hash={session_hash}")
    resp = conn.getresponse()
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = resp.fp.readline()
        if not line or b"process_completed" in line:
            break
    conn.close()


def dependency_index(port: int, predicate) -> int:
    config = json.loads(request(port, "GET", "/config")[1])
    components = {c["id"]: c for c in config["components"]}
    return next(d.get("id", i) for i, d in enumerate(config["dependencies"]) if predicate(d, components))


def enqueue_body(prompt: str, fn_index: int, session_hash: str) -> bytes:
    data = [
        prompt,
        "",
        "",
        "none",
        "none",
        None,
        None,
        None,
        None,
        None,
        None,
        0,
        None,
        1,
        False,
        "auto",
        None,
        False,
        False,
        "vae",
        None,
        None,
        None,
        1,
    ]  # …, fast, auto_duration, decoder, image, keyframes, keyframe_frames, upscale
    return json.dumps({"data": data, "fn_index": fn_index, "session_hash": session_hash}).encode()


def upload_body(name: str) -> tuple[bytes, str]:
    boundary = "StudioBoundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: text/plain\r\n\r\nnot from here\r\n--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


def cache_files(data_dir: Path) -> list[Path]:
    cache = data_dir / "gradio-cache"
    return sorted(cache.rglob("*")) if cache.exists() else []


# --- 1. file routes: enumerated from the app, a local file in the allowed folders only, never a URL ---


def test_every_route_that_takes_a_path_is_guarded(served, loopback_is_public):
    from fastapi.routing import iter_route_contexts

    from ui.security import path_routes

    app, port = served["blocks"].app, served["port"]
    listener = loopback_is_public
    target = f"127.0.0.1:{listener.server_address[1]}/x.png"
    taking = sorted({rc.path for rc in iter_route_contexts(app.routes) if rc.path and PATH_PARAM.search(rc.path)})
    # what Gradio 6 mounts that takes a path: its page assets, the file routes, the proxy
    assert {
        "/gradio_api/file={path_or_url:path}",
        "/gradio_api/file/{path:path}",
        "/gradio_api/proxy={url_path:path}",
        "/assets/{path:path}",
        "/static/{path:path}",
        "/svelte/{path:path}",
    } <= set(taking)
    assert not [p for p in taking if "run-history" in p]  # the remote-bucket history is not mounted
    # the guard's own reading of the routes finds every one of them
    prefixes = {p[: ANY_PARAM.search(p).start()] for p in taking}
    assert set(path_routes(app.routes)) == prefixes
    # and every one of them refuses a URL, over HTTP, without connecting anywhere
    for path in taking:
        param = PATH_PARAM.search(path)
        concrete = ANY_PARAM.sub("x", path[: param.start()] + "\0" + path[param.end() :]).replace(
            "\0", f"http://{target}"
        )
        status, body, _ = request(port, "GET", concrete)
        assert status == 403 and json.loads(body)["error"] == "this file is not served", (path, status, body)
    time.sleep(0.5)
    assert listener.connections == [] and listener.paths == []


@pytest.mark.parametrize("route", FILE_ROUTES + ASSET_ROUTES)
def test_no_route_form_fetches_a_url(served, loopback_is_public, route):
    listener = loopback_is_public
    for form, value in url_forms(f"127.0.0.1:{listener.server_address[1]}/x.png").items():
        for method in ("GET", "HEAD"):
            status, _, _ = request(served["port"], method, route + value)
            assert status == 403, (route, form, method, status)
    time.sleep(0.5)
    assert listener.connections == [] and listener.paths == []


def test_a_file_named_by_url_in_a_queue_join_is_not_fetched(served, loopback_is_public):
    listener, port = loopback_is_public, served["port"]
    # the Render tab's "restore settings from an MP4" drop zone: a file input Gradio would download
    fn_index = dependency_index(
        port,
        lambda d, comps: any(comps[i].get("props", {}).get("label", "").startswith("Drop an MP4") for i in d["inputs"]),
    )
    file_data = {
        "path": f"http://127.0.0.1:{listener.server_address[1]}/clip.mp4",
        "orig_name": "clip.mp4",
        "meta": {"_type": "gradio.FileData"},
    }
    body = json.dumps({"data": [file_data], "fn_index": fn_index, "session_hash": "urlbody"}).encode()
    status, data, _ = request(port, "POST", "/gradio_api/queue/join", {"Content-Type": "application/json"}, body)
    if status == 200:
        sse_until_done(port, "urlbody")
    assert status == 403 and json.loads(data)["error"] == "a file given by URL is not fetched"
    time.sleep(0.5)
    assert listener.connections == [] and listener.paths == []


def test_outputs_are_still_served_and_the_vault_and_db_are_not(served):
    studio, port, output = served["studio"], served["port"], served["output"]
    for route in ("/gradio_api/file=", "/gradio_api/file/"):
        status, data, _ = request(port, "GET", route + str(output))
        assert status == 200 and data == output.read_bytes(), route
    manifest = studio.settings.models_dir / "MANIFEST.json"
    for route in FILE_ROUTES:
        for secret in (
            studio.settings.db_path,
            manifest,
            studio.settings.models_dir,
            f"{studio.settings.outputs_dir}/../{studio.settings.db_path.name}",
            f"{studio.settings.outputs_dir}/%2e%2e/{studio.settings.db_path.name}",
        ):
            status, body, _ = request(port, "GET", route + str(secret))
            assert status == 403 and b"models" not in body and b"SQLite" not in body, (route, secret)
    # the page and the assets Gradio needs for it still load
    status, page, _ = request(port, "GET", "/")
    assert status == 200
    assets = set(re.findall(r"/?assets/[\w./-]+\.(?:js|css)", page.decode()))
    assert assets
    for asset in assets:
        assert request(port, "GET", "/" + asset.lstrip("/"))[0] == 200, asset
    assert request(port, "GET", "/theme.css")[0] == 200


# --- 2. Origin: null and other foreign origins cannot write ---


def test_origin_null_cannot_upload_or_join_the_queue(served):
    studio, port = served["studio"], served["port"]
    data_dir = studio.settings.data_dir
    before = cache_files(data_dir)
    body, content_type = upload_body("from-a-sandbox.txt")
    for origin in ("null", "NULL", "http://evil.example", f"http://127.0.0.1:{free_port()}"):
        status, data, _ = request(
            port, "POST", "/gradio_api/upload", {"Origin": origin, "Content-Type": content_type}, body
        )
        assert status == 403 and b"cross-site" in data, origin
    assert cache_files(data_dir) == before

    fn_index = dependency_index(port, lambda d, comps: d.get("api_name") == "enqueue")
    jobs = len(studio.history.jobs())
    json_type = {"Content-Type": "application/json"}
    status, _, _ = request(
        port,
        "POST",
        "/gradio_api/queue/join",
        {**json_type, "Origin": "null"},
        enqueue_body("from a sandboxed iframe", fn_index, "nullorigin"),
    )
    assert status == 403
    status, _, _ = request(
        port,
        "POST",
        "/gradio_api/call/enqueue",
        {**json_type, "Origin": "null"},
        json.dumps({"data": ["from a file: page"]}).encode(),
    )
    assert status == 403
    time.sleep(1)
    assert len(studio.history.jobs()) == jobs

    # the studio's own page still writes
    same = {"Origin": f"http://127.0.0.1:{port}"}
    status, data, _ = request(port, "POST", "/gradio_api/upload", {**same, "Content-Type": content_type}, body)
    assert status == 200 and Path(json.loads(data)[0]).read_bytes() == b"not from here"
    status, _, _ = request(
        port,
        "POST",
        "/gradio_api/queue/join",
        {**json_type, **same},
        enqueue_body("from the studio page", fn_index, "sameorigin"),
    )
    assert status == 200
    deadline = time.time() + 30
    while time.time() < deadline and not any(r["prompt"] == "from the studio page" for r in studio.history.jobs()):
        time.sleep(0.2)
    assert [r["prompt"] for r in studio.history.jobs()][0] == "from the studio page"
    assert len(studio.history.jobs()) == jobs + 1


def test_origin_null_cannot_open_a_websocket():
    from ui.security import StudioGuard

    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "websocket.connect"}

    def scope(origin: str) -> dict:
        return {
            "type": "websocket",
            "path": "/gradio_api/queue/ws",
            "raw_path": b"/gradio_api/queue/ws",
            "headers": [(b"host", b"127.0.0.1:7860"), (b"origin", origin.encode())],
        }

    asyncio.run(StudioGuard(app)(scope("null"), receive, send))
    assert reached == [] and sent == [{"type": "websocket.close", "code": 1008}]
    asyncio.run(StudioGuard(app, allowed_origins=["null"])(scope("null"), receive, send))
    asyncio.run(StudioGuard(app)(scope("http://127.0.0.1:7860"), receive, send))
    assert reached == ["/gradio_api/queue/ws", "/gradio_api/queue/ws"]


def test_allow_origin_flag_lets_the_named_origins_write(tiny_vault, tmp_path):
    from aiprod_studio.jobs.history import History

    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    server = start_server(tiny_vault, data, port, "--allow-origin", "null", "--allow-origin", "http://myhost:8080")
    try:
        body, content_type = upload_body("from-a-file-page.txt")
        status, answer, headers = request(
            port, "POST", "/gradio_api/upload", {"Origin": "null", "Content-Type": content_type}, body
        )
        assert status == 200 and Path(json.loads(answer)[0]).read_bytes() == b"not from here"
        assert Path(json.loads(answer)[0]).is_relative_to(data / "gradio-cache")
        assert headers["Access-Control-Allow-Origin"] == "null"  # the page may read the answer too
        status, answer, _ = request(
            port, "POST", "/gradio_api/upload", {"Origin": "http://MyHost:8080/", "Content-Type": content_type}, body
        )
        assert status == 200
        status, _, _ = request(
            port, "POST", "/gradio_api/upload", {"Origin": "http://myhost:9090", "Content-Type": content_type}, body
        )
        assert status == 403

        fn_index = dependency_index(port, lambda d, comps: d.get("api_name") == "enqueue")
        status, _, _ = request(
            port,
            "POST",
            "/gradio_api/queue/join",
            {"Origin": "null", "Content-Type": "application/json"},
            enqueue_body("from an allowed file: page", fn_index, "allowednull"),
        )
        assert status == 200
        deadline = time.time() + 60
        prompts: list[str] = []
        while time.time() < deadline and "from an allowed file: page" not in prompts:
            time.sleep(0.3)
            history = History(data / "history.sqlite")
            prompts = [r["prompt"] for r in history.jobs()]
            history.close()
        assert prompts == ["from an allowed file: page"]
        assert (
            request(
                port,
                "POST",
                "/gradio_api/upload",
                {"Origin": "http://evil.example", "Content-Type": content_type},
                body,
            )[0]
            == 403
        )
    finally:
        stop(server)


def test_a_malformed_allow_origin_is_refused(cli):
    r = cli("ui", "--allow-origin", "myhost:8080", "--port", str(free_port()), "--no-tiny", "--json")
    assert r.returncode == 2 and "myhost:8080" in r.stderr
    assert r.json["field"] == "allow_origin"
