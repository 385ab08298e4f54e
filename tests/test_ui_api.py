"""The launched studio over HTTP: the scripting API through gradio_client, and the server's guard."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from servers import free_port, serve_in_process

from engine.render import media

SNAPSHOT = Path(__file__).parent / "snapshots" / "gradio_api.json"


@pytest.fixture(scope="module")
def served(tiny_vault, tmp_path_factory):
    data = tmp_path_factory.mktemp("ui-data")
    models = data / "models"  # a copy: /lora_train adds entries
    shutil.copytree(tiny_vault, models)
    with serve_in_process(models, data) as s:
        yield s.studio, s.url, s.port


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served[1], verbose=False)


def test_render_endpoint_returns_a_playable_mp4(served, client):
    studio = served[0]
    video, record = client.predict(prompt="a robot dances in the rain", seed=21, api_name="/render")
    path = video["video"] if isinstance(video, dict) else video
    info = media.probe(path)
    assert info["video"]["frames"] == 17 and info["audio"]["codec"] == "aac"
    assert record["status"] == "done" and record["seed"] == 21
    assert record["recipe"]["prompt"] == "a robot dances in the rain"
    assert studio.history.get(record["id"])["output_path"] == record["output_path"]
    assert media.read_metadata_json(path) == record["recipe"]


def test_render_takes_a_start_image_and_keyframes_as_uploads(served, client, tmp_path):
    import numpy as np
    from gradio_client import handle_file
    from PIL import Image

    studio = served[0]
    for name, seed in (("start.png", 1), ("end.jpg", 2)):
        pixels = np.random.default_rng(seed).integers(0, 256, (48, 80, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / name)
    video, record = client.predict(
        prompt="a kite over the dunes",
        num_frames=17,
        image=handle_file(str(tmp_path / "start.png")),
        keyframes=[handle_file(str(tmp_path / "end.jpg"))],
        keyframe_frames=["last:0.5"],
        api_name="/render",
    )
    conditions = record["recipe"]["conditions"]
    assert [(c["frame"], c["strength"]) for c in conditions] == [(0, 1.0), (16, 0.5)]
    for c in conditions:  # prepared at the clip's size, kept by sha256 beside the outputs
        stored = studio.image_store().find(c["image"])
        assert stored is not None and Image.open(stored).size == (record["recipe"]["width"], record["recipe"]["height"])
    assert media.read_metadata_json(video["video"] if isinstance(video, dict) else video) == record["recipe"]
    # a text file is refused by its content, naming the parameter; nothing is queued
    (tmp_path / "notes.png").write_text("not a picture")
    before = len(studio.history.jobs())
    with pytest.raises(Exception, match="image 'notes.png' is not a PNG, JPEG or WebP picture"):
        client.predict(prompt="x", image=handle_file(str(tmp_path / "notes.png")), api_name="/enqueue")
    with pytest.raises(Exception, match="keyframe_frames must give one FRAME"):
        client.predict(prompt="x", keyframes=[handle_file(str(tmp_path / "end.jpg"))], api_name="/enqueue")
    assert len(studio.history.jobs()) == before


def test_enqueue_then_poll_job_until_the_mp4_arrives(client):
    queued = client.predict(prompt="three boats at dawn", seed=3, steps=4, api_name="/enqueue")
    assert queued["status"] in ("queued", "running") and queued["id"] > 0
    deadline = time.time() + 120
    while time.time() < deadline:
        record, video = client.predict(job_id=queued["id"], api_name="/job")
        if record["status"] == "done":
            break
        assert record["status"] in ("queued", "running")
        time.sleep(0.2)
    assert record["progress"] == 1.0 and record["recipe"]["steps"] == 4
    path = video["video"] if isinstance(video, dict) else video
    assert media.probe(path)["video"]["frames"] == 17


def test_cancel_a_queued_job_over_the_api(client):
    long = client.predict(prompt="a long take", steps=200, api_name="/enqueue")
    waiting = client.predict(prompt="never rendered", api_name="/enqueue")
    assert client.predict(job_id=waiting["id"], api_name="/cancel") == {"job_id": waiting["id"], "result": "cancelled"}
    assert client.predict(job_id=long["id"], api_name="/cancel")["result"] in ("cancelled", "cancelling")
    record, video = client.predict(job_id=waiting["id"], api_name="/job")
    assert record["status"] == "cancelled" and record["started_at"] is None and video is None


def test_history_endpoint_lists_records_newest_first(client):
    rows = client.predict(limit=50, api_name="/history")
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, reverse=True) and len(ids) >= 3
    done = client.predict(status="done", text="robot", api_name="/history")
    assert [r["prompt"] for r in done] == ["a robot dances in the rain"]


def test_bad_input_returns_an_error_naming_the_field(client):
    with pytest.raises(Exception, match="num_frames must be 8k\\+1"):
        client.predict(prompt="x", num_frames=20, api_name="/enqueue")
    with pytest.raises(Exception, match="job_id 424242 does not exist"):
        client.predict(job_id=424242, api_name="/job")


@pytest.mark.parametrize(
    "job_id, message",
    [
        (2**70, "job_id must be a whole number from 1 to 9223372036854775807, got a 22-digit number"),
        (1.5, "job_id must be a whole number, got 1.5"),
        (-3, "job_id must be a whole number from 1 to .*, got -3"),
        ("1; DROP", "job_id must be a whole"),
        ("²", "job_id must be a whole"),
        (424242, "job_id 424242 does not exist"),
    ],
)
def test_hostile_job_ids_are_refused_by_name(client, job_id, message):
    for endpoint in ("/job", "/cancel"):
        with pytest.raises(Exception, match=message):
            client.predict(job_id=job_id, api_name=endpoint)


def test_hostile_values_get_an_error_naming_the_field_and_leave_nothing_running(client, served):
    studio = served[0]
    before = studio.history.count()
    with pytest.raises(Exception, match="dataset is required"):
        client.predict(dataset="", name="nothing", steps=10, api_name="/lora_train")
    with pytest.raises(Exception, match="dataset '   ' is|dataset is required"):
        client.predict(dataset="   ", name="nothing", steps=10, api_name="/lora_train")
    with pytest.raises(Exception, match="latent tokens"):
        client.predict(prompt="too big", width=4096, height=4096, num_frames=481, api_name="/enqueue")
    # a raw JSON escape: what a hostile script sends (gradio_client itself cannot encode the character)
    answer = call_raw(
        served[1],
        "enqueue",
        '{"data": ["a \\ud800 b", "", "", "none", "none", null, null, null, null, null, null, 0, null, 1, false, '
        '"auto", null, false, false, "vae", null, null, null, 1]}',
    )
    assert "prompt contains an invalid character (lone surrogate U+D800" in answer, answer
    with pytest.raises(Exception, match="status must be one of queued, running"):
        client.predict(status="bogus", api_name="/history")
    with pytest.raises(Exception, match="limit must be a whole number from 1 to 500, got -1"):
        client.predict(limit=-1, api_name="/history")
    with pytest.raises(Exception, match="kind must be one of pipeline"):
        client.predict(kind="bogus", api_name="/vault_list")
    with pytest.raises(Exception, match="offset must be a whole number"):
        client.predict(offset=1.5, api_name="/history")
    with pytest.raises(Exception, match="offset must be a whole number from 0 to .*, got a 22-digit number"):
        client.predict(offset=2**70, api_name="/history")
    with pytest.raises(Exception, match="text contains an invalid character"):
        client.predict(text="\x00", api_name="/history")
    board = {"title": "t", "shots": [{"prompt": "one", "duration_s": 1.0, "seed": 1}]}
    with pytest.raises(Exception, match="storyboard id 999999 does not exist"):
        client.predict(storyboard=json.dumps(board | {"id": 999999}), wait=False, api_name="/storyboard_render")
    with pytest.raises(Exception, match="duration_s"):
        client.predict(
            storyboard=json.dumps(board | {"shots": [{"prompt": "one", "duration_s": 1e308, "seed": 1}]}),
            wait=False,
            api_name="/storyboard_render",
        )
    with pytest.raises(Exception, match="storyboard"):
        client.predict(
            storyboard='{"shots": ' + "[" * 10_000 + "]" * 10_000 + "}", wait=False, api_name="/storyboard_render"
        )
    assert studio.history.count() == before and studio.history.count("running") == 0


def call_raw(base: str, endpoint: str, body: str) -> str:
    """POST a hand-written JSON body to /gradio_api/call/ENDPOINT and return the event stream's text."""
    request = urllib.request.Request(
        f"{base}gradio_api/call/{endpoint}", data=body.encode("ascii"), headers={"Content-Type": "application/json"}
    )
    event = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    return urllib.request.urlopen(f"{base}gradio_api/call/{endpoint}/{event}", timeout=60).read().decode()


def api_surface(info: dict) -> dict:
    return {
        name: {
            "parameters": [
                [p["parameter_name"], p["parameter_has_default"], p["parameter_default"]] for p in spec["parameters"]
            ],
            "returns": [r["component"] for r in spec["returns"]],
        }
        for name, spec in sorted(info["named_endpoints"].items())
    }


def test_api_surface_matches_the_snapshot(served):
    info = json.loads(urllib.request.urlopen(served[1] + "gradio_api/info", timeout=10).read())
    assert info["unnamed_endpoints"] == {}
    surface = api_surface(info)
    if os.environ.get("AIPROD_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(surface, indent=1) + "\n")
    assert surface == json.loads(SNAPSHOT.read_text())


# -- the server's guard -------------------------------------------------------------------------------
def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def test_foreign_host_is_refused(served):
    port = served[2]
    assert request(port, "GET", "/", {"Host": "evil.example"})[0] == 403
    assert request(port, "GET", "/gradio_api/info", {"Host": "evil.example:7860"})[0] == 403
    assert request(port, "GET", "/", {"Host": f"127.0.0.1:{port}"})[0] == 200
    assert request(port, "GET", "/", {"Host": f"localhost:{port}"})[0] == 200


def test_cross_site_upload_is_refused_and_writes_nothing(served):
    studio, _, port = served
    cache = studio.settings.data_dir / "gradio-cache"
    before = sorted(p for p in cache.rglob("*")) if cache.exists() else []
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="evil.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\npwned\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"Origin": "http://evil.example", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, _ = request(port, "POST", "/gradio_api/upload", headers, body)
    assert status == 403
    after = sorted(p for p in cache.rglob("*")) if cache.exists() else []
    assert after == before and not any(p.name == "evil.txt" for p in after)
    same_site = {**headers, "Origin": f"http://127.0.0.1:{port}"}
    assert request(port, "POST", "/gradio_api/upload", same_site, body)[0] == 200


@pytest.mark.parametrize("target", ["db", "manifest", "weights", "dotdot", "encoded", "double-encoded"])
def test_file_route_serves_only_outputs(served, target):
    tiny_vault = served[0].settings.models_dir
    studio, _, port = served
    weights = tiny_vault / "pipelines/aiprod-tiny-ltx2/transformer/diffusion_pytorch_model.safetensors"
    outputs = studio.settings.outputs_dir
    paths = {
        "db": str(studio.settings.db_path),
        "manifest": str(tiny_vault / "MANIFEST.json"),
        "weights": str(weights),
        "dotdot": f"{outputs}/../history.sqlite",
        "encoded": f"{outputs}/%2e%2e/history.sqlite",
        "double-encoded": f"{outputs}/%252e%252e/history.sqlite",
    }
    for route in ("/gradio_api/file=", "/file="):
        assert request(port, "GET", route + paths[target])[0] == 403, (route, target)


def test_file_route_serves_rendered_outputs(served):
    studio, _, port = served
    done = studio.history.jobs(status="done")[0]["output_path"]
    status, data = request(port, "GET", "/gradio_api/file=" + done)
    assert status == 200 and data == Path(done).read_bytes()


def test_listen_without_auth_is_refused(cli):
    r = cli("ui", "--listen", "--port", str(free_port()), "--json")
    assert r.returncode == 2 and "--listen" in r.stderr and "--auth" in r.stderr
    assert r.json["field"] == "auth"


def test_a_port_in_use_is_refused_by_name(cli, served):
    r = cli("ui", "--port", str(served[2]), "--no-tiny", "--json")
    assert r.returncode == 2 and r.json["field"] == "port" and f"port {served[2]} is in use" in r.json["error"]
    assert "AIPROD Studio: http" not in r.stdout  # no banner for a studio that never served


def test_server_binds_loopback_even_if_the_environment_says_otherwise(served, monkeypatch):
    from ui.app import launch_kwargs

    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SHARE", "True")
    kwargs = launch_kwargs(served[0], 7860)
    assert kwargs["server_name"] == "127.0.0.1" and kwargs["share"] is False
    assert kwargs["enable_monitoring"] is False and kwargs["mcp_server"] is False and kwargs["max_file_size"]
    port = served[2]
    other = [
        a
        for a in {i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
        if not a.startswith("127.")
    ]
    for address in other:
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=1).close()


def test_vault_list_and_verify_endpoints(client):
    [entry] = client.predict(kind="pipeline", api_name="/vault_list")
    assert entry["name"] == "aiprod-tiny-ltx2" and entry["kind"] == "pipeline" and len(entry["digest"]) == 64
    assert all(len(f["sha256"]) == 64 for f in entry["files"].values())
    report = client.predict(name="aiprod-tiny-ltx2", deep=True, api_name="/vault_verify")
    assert report["ok"] is True and report["mode"] == "deep"
    assert report["entries"][0]["hashed_files"] == len(entry["files"])
    with pytest.raises(Exception, match="'nope' is not an entry"):
        client.predict(name="nope", api_name="/vault_verify")


def test_storyboard_split_and_render_endpoints(client, served):
    studio = served[0]
    board = client.predict(
        script="Shot 1: a lamp (0.5s)\nShot 2: a door (0.5s)", base_seed=3, api_name="/storyboard_split"
    )
    assert [s["prompt"] for s in board["shots"]] == ["a lamp", "a door"] and board["shots"][1]["seed"] == 4
    queued_only = client.predict(storyboard=json.dumps(board), wait=False, api_name="/storyboard_render")
    film, info = queued_only
    assert film is None and len(info["job_ids"]) == 2
    film, info = client.predict(storyboard=json.dumps(board), api_name="/storyboard_render")
    assert info["job_ids"] == queued_only[1]["job_ids"] and info["frames"] == 24
    assert media.probe(film)["video"]["frames"] == 24 and len(info["chapters"]) == 2
    assert all(studio.history.get(j)["status"] == "done" for j in info["job_ids"])
    with pytest.raises(Exception, match="script is empty"):
        client.predict(script=" ", api_name="/storyboard_split")
    with pytest.raises(Exception, match="no shots"):
        client.predict(storyboard='{"shots": []}', api_name="/storyboard_render")


def test_lora_train_endpoint_queues_a_run_and_job_reports_it(client, served, tmp_path_factory):
    from training_data import make_dataset

    folder = make_dataset(tmp_path_factory.mktemp("api-ds") / "ds", n=2)
    rec = client.predict(
        dataset=str(folder), name="api-lora", rank=4, steps=6, lr=1e-3, save_every=3, api_name="/lora_train"
    )
    assert rec["kind"] == "train" and rec["status"] in ("queued", "running")
    deadline = time.time() + 120
    while time.time() < deadline:
        record, file = client.predict(job_id=rec["id"], api_name="/job")
        if record["status"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert record["status"] == "done" and record["step"] == 6 and file is None
    assert record["output_path"].endswith("api-lora.safetensors")
    with pytest.raises(Exception, match="already an entry"):
        client.predict(dataset=str(folder), name="api-lora", api_name="/lora_train")
    with pytest.raises(Exception, match="rank"):
        client.predict(dataset=str(folder), name="other", rank=0, api_name="/lora_train")
    empty = tmp_path_factory.mktemp("api-empty")  # a folder with nothing to learn from: refused, not queued
    (empty / "notes.txt").write_text("no clips here")
    jobs = len(client.predict(limit=500, api_name="/history"))
    with pytest.raises(Exception, match="dataset: no usable items"):
        client.predict(dataset=str(empty), name="from-nothing", steps=4, api_name="/lora_train")
    assert len(client.predict(limit=500, api_name="/history")) == jobs


def test_job_does_not_serve_a_clip_written_outside_the_outputs_folder(client, served, tmp_path):
    """A command-line render with --out elsewhere: /job reports it done, with its path, and serves no file."""
    studio = served[0]
    row = studio.render(studio.build_recipe({"prompt": "kept on my desk", "steps": 2}), out_path=tmp_path / "mine.mp4")
    record, video = client.predict(job_id=row["id"], api_name="/job")
    assert record["status"] == "done" and record["output_path"] == str(tmp_path / "mine.mp4") and video is None


def test_qa_and_reproduce_endpoints(client):
    _video, record = client.predict(prompt="a red square", seed=31, api_name="/render")
    assert record["qa"]["ok"] and record["qa"]["semantic"]["model"] == "aiprod-tiny-clip"
    answer = client.predict(job_id=record["id"], api_name="/qa")
    assert answer == {"job_id": record["id"], "qa": record["qa"]}
    again = client.predict(job_id=record["id"], api_name="/reproduce")
    assert again["passed"] and again["comparison"]["psnr_min"] == "inf" and again["comparison"]["identical"]
    listed = client.predict(findings="no", order="score", api_name="/history")
    assert record["id"] in [r["id"] for r in listed]
    from gradio_client.exceptions import AppError

    for api_name, kwargs, says in [
        ("/qa", {"job_id": 999999}, "job_id 999999 does not exist"),
        ("/reproduce", {"job_id": -1}, "job_id must be a whole number"),
        ("/history", {"findings": "maybe"}, "findings must be"),
    ]:
        with pytest.raises(AppError, match=says):
            client.predict(**kwargs, api_name=api_name)


def test_best_of_n_over_the_api(client):
    video, record = client.predict(prompt="a green field", seed=60, takes=3, api_name="/render")
    takes = record["takes"]
    assert [t["rank"] for t in takes] == [1, 2, 3] and sorted(t["seed"] for t in takes) == [60, 61, 62]
    assert takes[0]["best"] and takes[0]["id"] == record["id"] and record["take_of"] == min(t["id"] for t in takes)
    scores = [t["prompt_match"] for t in takes]
    assert scores == sorted(scores, reverse=True)
    assert media.probe(video)["video"]["frames"] == record["recipe"]["num_frames"]
    queued = client.predict(prompt="a green field", seed=70, takes=2, api_name="/enqueue")
    assert len(queued["take_ids"]) == 2 and queued["id"] == queued["take_ids"][0]
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="takes must be a whole number from 1 to 8, got 0"):
        client.predict(prompt="x", takes=0, api_name="/enqueue")


def test_enhance_prompt_endpoint_names_what_is_missing(client):
    with pytest.raises(Exception, match="scenarist: the vault holds no local LLM"):
        client.predict(prompt="a fox in snow", api_name="/enhance_prompt")
    with pytest.raises(Exception, match="seed must be"):
        client.predict(prompt="a fox in snow", seed=-1, api_name="/enhance_prompt")


def test_upscale_endpoint_queues_a_finished_clip_two_stage(served, client):
    from engine.models.tiny_upsampler import make_tiny_upsampler

    studio = served[0]
    with pytest.raises(Exception, match="job_id 999999 does not exist"):
        client.predict(job_id=999999, api_name="/upscale")
    _, record = client.predict(prompt="a gull over the pier", seed=5, num_frames=9, steps=2, api_name="/render")
    with pytest.raises(Exception, match="needs a latent upsampler in the vault"):
        client.predict(job_id=record["id"], api_name="/upscale")
    make_tiny_upsampler(studio.vault)
    queued = client.predict(job_id=record["id"], api_name="/upscale")
    assert queued["recipe"]["upscale"] == 2 and queued["recipe"]["seed"] == 5
    deadline = time.time() + 120
    while time.time() < deadline and client.predict(job_id=queued["id"], api_name="/job")[0]["status"] != "done":
        time.sleep(0.2)
    record2, video = client.predict(job_id=queued["id"], api_name="/job")
    assert record2["status"] == "done", record2["error"]
    assert (
        media.probe(video["video"] if isinstance(video, dict) else video)["video"]["width"]
        == 2 * record["recipe"]["width"]
    )


def test_extend_endpoint_continues_a_finished_clip(served, client):
    _, record = client.predict(prompt="a tram at night", seed=2, num_frames=9, steps=2, api_name="/render")
    with pytest.raises(Exception, match="frames must be a multiple of 8"):
        client.predict(job_id=record["id"], frames=12, api_name="/extend")
    queued = client.predict(job_id=record["id"], frames=8, prompt="the tram turns a corner", api_name="/extend")
    assert queued["parent_id"] == record["id"] and queued["recipe"]["edit"]["frames"] == 8
    deadline = time.time() + 120
    while time.time() < deadline and client.predict(job_id=queued["id"], api_name="/job")[0]["status"] != "done":
        time.sleep(0.2)
    done, video = client.predict(job_id=queued["id"], api_name="/job")
    assert done["status"] == "done", done["error"]
    path = video["video"] if isinstance(video, dict) else video
    assert media.probe(path)["video"]["frames"] == 17
    assert (media.read_frames(path)[:9] == media.read_frames(record["output_path"])).all()


def test_retake_endpoint_renders_a_range_again(served, client):
    _, record = client.predict(prompt="a tram at night", seed=2, num_frames=25, fps=8, steps=2, api_name="/render")
    with pytest.raises(Exception, match="end must be after start"):
        client.predict(job_id=record["id"], start=2, end=1, api_name="/retake")
    queued = client.predict(job_id=record["id"], start=1, end=2, seed=4, api_name="/retake")
    assert queued["parent_id"] == record["id"] and queued["recipe"]["seed"] == 4
    assert (queued["recipe"]["edit"]["start"], queued["recipe"]["edit"]["frames"]) == (8, 8)
    deadline = time.time() + 120
    while time.time() < deadline and client.predict(job_id=queued["id"], api_name="/job")[0]["status"] != "done":
        time.sleep(0.2)
    done, video = client.predict(job_id=queued["id"], api_name="/job")
    assert done["status"] == "done", done["error"]
    made, parent = (
        media.read_frames(video["video"] if isinstance(video, dict) else video),
        media.read_frames(record["output_path"]),
    )
    assert (made[:8] == parent[:8]).all() and (made[16:] == parent[16:]).all() and (made[8] != parent[8]).any()


@pytest.mark.parametrize(
    "image, keyframes",
    [
        ('"/etc/hostname"', "null"),  # a path on the studio's machine, not an upload
        ('{"path": "/etc/hostname"}', "null"),  # a file record without Gradio's upload marker
        ("null", '[{"path": "/etc/hostname"}]'),
        ("null", "[null]"),  # an empty keyframe
    ],
)
def test_pictures_must_be_uploads_not_paths_on_the_studio_machine(served, image, keyframes):
    studio = served[0]
    before = len(studio.history.jobs())
    frames = "null" if keyframes == "null" else '["8"]'
    body = (
        '{"data": ["x", "", "", "none", "none", null, null, null, null, null, null, 0, null, 1, false, '
        f'"auto", null, false, false, "vae", {image}, {keyframes}, {frames}, 1]}}'
    )
    answer = call_raw(served[1], "enqueue", body)
    assert "event: error" in answer and ("handle_file" in answer or "empty" in answer), answer
    assert "hostname" not in answer.split("handle_file")[-1]  # nothing of the file's content comes back
    assert len(studio.history.jobs()) == before
