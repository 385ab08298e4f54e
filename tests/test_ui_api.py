"""The Gradio app, launched for real on loopback, driven through gradio_client."""

from __future__ import annotations

import socket
import urllib.request
import json

import pytest

from engine import media


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_vault, tmp_path_factory):
    from aiprod_studio.settings import load_settings
    from engine.studio import Studio
    from ui.app import build_app, launch_kwargs, prepare

    data = tmp_path_factory.mktemp("ui-data")
    studio = Studio(load_settings(models_dir=tiny_vault, data_dir=data, device="cpu"))
    prepare(studio, build_tiny_if_empty=False)
    app = build_app(studio)
    app.queue(default_concurrency_limit=1)
    port = free_port()
    app.launch(**launch_kwargs(studio, port), prevent_thread_lock=True, quiet=True)
    yield studio, f"http://127.0.0.1:{port}/"
    app.close()
    studio.close()


def test_render_endpoint_returns_a_playable_mp4(served):
    from gradio_client import Client

    studio, url = served
    client = Client(url, verbose=False)
    video, record = client.predict(prompt="a robot dances in the rain", seed=21, api_name="/render")
    path = video["video"] if isinstance(video, dict) else video
    info = media.probe(path)
    assert info["video"]["frames"] == 17 and info["audio"]["codec"] == "aac"
    assert record["status"] == "done" and record["seed"] == 21
    assert record["recipe"]["prompt"] == "a robot dances in the rain"
    assert studio.history.get(record["id"])["output_path"] == record["output_path"]
    assert media.read_metadata_json(path) == record["recipe"]


def test_render_endpoint_reports_the_bad_field(served):
    from gradio_client import Client

    _, url = served
    with pytest.raises(Exception, match="num_frames must be 8k\\+1"):
        Client(url, verbose=False).predict(prompt="x", num_frames=20, api_name="/render")


def test_only_named_public_endpoints_are_exposed(served):
    _, url = served
    info = json.loads(urllib.request.urlopen(url + "gradio_api/info", timeout=10).read())
    assert set(info["named_endpoints"]) == {"/render"}
    assert info["unnamed_endpoints"] == {}
    params = [p["parameter_name"] for p in info["named_endpoints"]["/render"]["parameters"]]
    assert params == ["prompt", "negative_prompt", "model", "quantization", "width", "height", "num_frames", "fps",
                      "steps", "guidance", "seed"]


def test_server_listens_on_loopback_only(served):
    _, url = served
    page = urllib.request.urlopen(url, timeout=10).read().decode()
    assert "AIPROD Studio" in page
    port = int(url.rsplit(":", 1)[1].strip("/"))
    other = [a for a in {i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
             if not a.startswith("127.")]
    for address in other:
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=1).close()
