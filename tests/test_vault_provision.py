"""`vault provision` against a fake hub: pinned commits, hub hashes, licences, nothing half-done."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from aiprod_studio import offline
from aiprod_studio.errors import BadInput, IntegrityError, StudioError
from aiprod_studio.vault.provision import HubClient, find_token, load_catalog, provision, read_token_file
from aiprod_studio.vault.store import Vault
from aiprod_studio.vault.verify import verify

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class RevisionNotFoundError(Exception):
    """Named like huggingface_hub's error for an unknown revision."""


def blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class FakeHub:
    """A repo at one commit with branch `main`; counts downloads; can serve one corrupted file."""

    def __init__(self, files: dict[str, bytes], lfs: set[str], corrupt: str | None = None):
        self.files, self.lfs, self.corrupt = files, lfs, corrupt
        self.downloads: list[list[str]] = []

    def model_info(self, repo_id, revision):
        if revision not in ("main", COMMIT):
            raise RevisionNotFoundError(f"404: {revision} not found in {repo_id}")
        siblings = []
        for name, data in self.files.items():
            lfs = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} if name in self.lfs else None
            siblings.append(SimpleNamespace(rfilename=name, size=len(data), blob_id=blob_id(data), lfs=lfs))
        return SimpleNamespace(sha=COMMIT, siblings=siblings, card_data={"license": "apache-2.0"}, tags=[])

    def snapshot_download(self, repo_id, revision, local_dir, allow_patterns):
        assert revision == COMMIT  # always the resolved commit, never a moving branch
        self.downloads.append(list(allow_patterns))
        for name in allow_patterns:
            p = Path(local_dir) / name
            p.parent.mkdir(parents=True, exist_ok=True)
            data = self.files[name]
            p.write_bytes(data[:-1] + b"X" if name == self.corrupt else data)
        (Path(local_dir) / ".cache/huggingface").mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / ".cache/huggingface/meta").write_text("bookkeeping")
        return str(local_dir)


def safetensors_bytes(n=16) -> bytes:
    header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes(range(n))


def repo_files() -> dict[str, bytes]:
    return {
        "model_index.json": b'{"_class_name": "LTX2Pipeline"}',
        "transformer/config.json": b'{"num_layers": 2}',
        "transformer/diffusion_pytorch_model.safetensors": safetensors_bytes(),
        "transformer/diffusion_pytorch_model.bin": b"\x80\x04pickle",
        "README.md": b"# a model",
    }


def test_provision_pins_the_commit_and_writes_a_correct_manifest(tmp_path):
    hub = FakeHub(repo_files(), lfs={"transformer/diffusion_pytorch_model.safetensors"})
    vault = Vault(tmp_path)
    entry = provision(
        vault, "Lightricks/LTX-2", revision="main", name="ltx2", allow=["model_index.json", "*/*"], hub=hub
    )
    assert entry.source.repo == "Lightricks/LTX-2" and entry.source.revision == COMMIT
    assert entry.license == "apache-2.0" and entry.kind == "pipeline" and entry.family == "ltx2"
    # pickled weights and files outside the patterns were never fetched
    assert hub.downloads == [
        ["model_index.json", "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors"]
    ]
    files = repo_files()
    assert {k: (v.sha256, v.size) for k, v in entry.files.items()} == {
        k: (hashlib.sha256(files[k]).hexdigest(), len(files[k])) for k in hub.downloads[0]
    }
    assert not (tmp_path / "pipelines/ltx2/.cache").exists()
    assert not list((tmp_path / "pipelines").glob(".*"))
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["entries"][0]["source"] == {"repo": "Lightricks/LTX-2", "revision": COMMIT}
    assert verify(vault, deep=True).ok


def test_unresolvable_revision_is_refused(tmp_path):
    hub = FakeHub(repo_files(), lfs=set())
    with pytest.raises(BadInput) as info:
        provision(Vault(tmp_path), "Lightricks/LTX-2", revision="no-such-branch", name="x", hub=hub)
    assert info.value.field == "revision" and "'no-such-branch'" in str(info.value)
    bad_sha = FakeHub(repo_files(), lfs=set())
    bad_sha.model_info = lambda repo_id, revision: SimpleNamespace(sha="main", siblings=[], card_data=None)
    with pytest.raises(BadInput, match="did not resolve to a 40-hex commit"):
        provision(Vault(tmp_path), "Lightricks/LTX-2", revision="main", name="x", hub=bad_sha)
    with pytest.raises(BadInput) as info:
        provision(Vault(tmp_path), "Lightricks/LTX-2", name="x", hub=hub)
    assert info.value.field == "revision"
    assert Vault(tmp_path).entries() == [] and hub.downloads == []


@pytest.mark.parametrize("corrupt", ["transformer/diffusion_pytorch_model.safetensors", "transformer/config.json"])
def test_a_file_that_differs_from_the_hub_is_refused(tmp_path, corrupt):
    hub = FakeHub(repo_files(), lfs={"transformer/diffusion_pytorch_model.safetensors"}, corrupt=corrupt)
    vault = Vault(tmp_path)
    with pytest.raises(IntegrityError, match=corrupt):
        provision(vault, "Lightricks/LTX-2", revision=COMMIT, name="ltx2", allow=["model_index.json", "*/*"], hub=hub)
    assert vault.entries() == [] and not (tmp_path / "pipelines/ltx2").exists()
    # the bad file is gone; the good ones stay for the next run to resume from
    assert not (tmp_path / "pipelines/.ltx2.provisioning" / corrupt).exists()
    hub.corrupt = None
    entry = provision(
        vault, "Lightricks/LTX-2", revision=COMMIT, name="ltx2", allow=["model_index.json", "*/*"], hub=hub
    )
    assert entry.source.revision == COMMIT


def test_catalogue_names_fill_in_repo_patterns_and_license(tmp_path):
    names = {i.name: i for i in load_catalog(Vault(tmp_path))}
    assert {"ltx-2", "ltx-video", "clip-vit-b32"} <= set(names)
    assert names["ltx-2"].repo == "Lightricks/LTX-2" and names["ltx-2"].family == "ltx2"
    hub = FakeHub(repo_files(), lfs=set())
    entry = provision(Vault(tmp_path), "ltx-2", revision="main", hub=hub)
    assert entry.name == "ltx-2" and entry.license == "LTX-2 Community License"
    with pytest.raises(BadInput) as info:
        provision(Vault(tmp_path), "no-such-model", revision="main", hub=hub)
    assert info.value.field == "repo" and "ltx-video" in str(info.value)


def test_the_real_client_is_the_only_way_out_and_goes_back_offline(tmp_path, monkeypatch):
    """Under the socket guard the real client fails cleanly (no hang, no entry) and restores offline mode."""
    offline.enforce()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(OSError("no network in tests")))
    with offline.no_network() as attempts:
        with pytest.raises(Exception) as info:
            provision(Vault(tmp_path), "Lightricks/LTX-2", revision="main", name="x", hub=HubClient())
    assert "cannot reach the hub" in str(info.value) or attempts
    import huggingface_hub.constants as constants

    assert constants.HF_HUB_OFFLINE is True
    assert Vault(tmp_path).entries() == []


class ConnectTimeout(Exception):
    """Named like httpx's error for a connection that timed out."""


def _offline_errors():
    import httpx
    import requests
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    def chained(outer, inner):
        try:
            raise inner
        except Exception:  # noqa: BLE001
            try:
                raise outer  # raised while handling `inner`, the way the hub client wraps errors
            except Exception as exc:  # noqa: BLE001
                return exc

    return [
        ("connection refused", ConnectionRefusedError(111, "Connection refused"), "[Errno 111] Connection refused"),
        (
            "dns",
            socket.gaierror(-3, "Temporary failure in name resolution"),
            "[Errno -3] Temporary failure in name resolution",
        ),
        ("timeout", TimeoutError("timed out"), "timed out"),
        ("connect timeout", ConnectTimeout("connect timed out"), "connect timed out"),
        ("httpx", httpx.ConnectError("[Errno -2] Name or service not known"), "[Errno -2] Name or service not known"),
        ("requests", requests.exceptions.ConnectionError("Max retries exceeded"), "Max retries exceeded"),
        (
            "offline mode",
            OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled"),
            "the hub client is in offline mode",
        ),
        (
            "no route",
            chained(RuntimeError("while resolving the revision"), OSError(101, "Network is unreachable")),
            "[Errno 101] Network is unreachable",
        ),
        (
            "not cached",
            chained(LocalEntryNotFoundError("outgoing traffic has been disabled"), httpx.ConnectError("no route")),
            "outgoing traffic has been disabled",
        ),
        ("not a network error", RuntimeError("the hub answered nonsense"), None),
    ]


@pytest.mark.parametrize("step", ["model_info", "snapshot_download"])
@pytest.mark.parametrize(("case", "error", "reason"), _offline_errors(), ids=[c[0] for c in _offline_errors()])
def test_no_network_is_named_as_the_cause_with_the_way_out(tmp_path, step, case, error, reason):
    hub = FakeHub(repo_files(), lfs=set())

    def fail(*args, **kwargs):
        raise error

    setattr(hub, step, fail)
    vault = Vault(tmp_path)
    if reason is None:  # anything else stays an internal error (exit 1), not blamed on the network
        with pytest.raises(StudioError) as info:
            provision(vault, "Lightricks/LTX-2", revision=COMMIT, name="x", hub=hub)
        assert info.value.exit_code == 1 and "cannot reach huggingface.co" not in str(info.value)
        return
    with pytest.raises(BadInput) as info:
        provision(vault, "Lightricks/LTX-2", revision=COMMIT, name="x", hub=hub)
    assert info.value.exit_code == 2
    assert str(info.value) == (
        f"cannot reach huggingface.co: {reason}; provision needs a network connection — "
        "run it on a connected machine and bring the model over with vault export/import"
    )
    assert vault.entries() == [] and not (tmp_path / "pipelines/x").exists()


def test_the_real_client_without_network_names_the_cause_and_goes_back_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    offline.enforce()

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with offline.no_network():
        with pytest.raises(BadInput) as info:
            provision(Vault(tmp_path), "Lightricks/LTX-2", revision="main", name="x", hub=HubClient())
    assert str(info.value).startswith("cannot reach huggingface.co: ")
    assert "vault export/import" in str(info.value) and info.value.exit_code == 2
    assert constants.HF_HUB_OFFLINE is True
    assert Vault(tmp_path).entries() == []


def test_the_cli_says_why_and_exits_2(cli, tmp_path, monkeypatch):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there: the connection is refused, nothing leaves the machine
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    r = cli(
        "vault",
        "provision",
        "Lightricks/LTX-2",
        "--revision",
        "main",
        "--name",
        "x",
        "--json",
        models_dir=tmp_path / "models",
    )
    assert r.returncode == 2, r.stderr
    assert r.json["error"].startswith(f"cannot reach 127.0.0.1:{port}: ") and "internal error" not in r.stderr
    assert "run it on a connected machine and bring the model over with vault export/import" in r.json["error"]
    assert not (tmp_path / "models/pipelines/x").exists()


# -- variants, gated repos and access tokens -------------------------------------------------------
SECRET = "hf_SeCrEtToKeN0123456789abcdefXYZ"  # a token-shaped string that must never leave the hub calls


class TokenHub(FakeHub):
    """A gated repo: answers only calls that carry `allowed` as their token; records every token sent."""

    def __init__(self, *args, allowed: str | None = SECRET, **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed, self.tokens = allowed, []

    def _check(self, repo_id, token):
        self.tokens.append(token)
        if token != self.allowed:
            raise gated_error(repo_id)

    def model_info(self, repo_id, revision, token=None):
        self._check(repo_id, token)
        return super().model_info(repo_id, revision)

    def snapshot_download(self, repo_id, revision, local_dir, allow_patterns, token=None):
        self._check(repo_id, token)
        return super().snapshot_download(repo_id, revision, local_dir, allow_patterns)


def http_error(cls_name: str, status: int, repo: str, text: str = ""):
    import httpx2
    from huggingface_hub import errors

    url = f"https://huggingface.co/api/models/{repo}"
    response = httpx2.Response(status, request=httpx2.Request("GET", url))
    return getattr(errors, cls_name)(f"{status} Client Error. {text or 'for url ' + url}", response=response)


def gated_error(repo: str):
    return http_error("GatedRepoError", 403, repo, f"Cannot access gated repo. Access to model {repo} is restricted.")


class NoCallsHub:
    """A hub that must not be called at all."""

    def model_info(self, *args, **kwargs):
        raise AssertionError("the hub was called")

    snapshot_download = model_info


def everything_in(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_a_catalogue_variant_is_recorded_in_the_manifest(tmp_path):
    vault = Vault(tmp_path)
    distilled = provision(vault, "ltx-2.3-distilled", revision="main", hub=FakeHub(repo_files(), lfs=set()))
    base = provision(vault, "ltx-2.3", revision="main", hub=FakeHub(repo_files(), lfs=set()))
    mine = provision(
        vault, "someone/fast-ltx", revision="main", variant="distilled", hub=FakeHub(repo_files(), lfs=set())
    )
    assert (distilled.variant, base.variant, mine.variant) == ("distilled", None, "distilled")
    assert distilled.source.repo == "diffusers/LTX-2.3-Distilled-Diffusers"
    manifest = {e["name"]: e for e in json.loads((tmp_path / "MANIFEST.json").read_text())["entries"]}
    assert manifest["ltx-2.3-distilled"]["variant"] == "distilled" and manifest["ltx-2.3"]["variant"] is None
    with pytest.raises(BadInput) as info:
        provision(vault, "someone/x", revision="main", variant="turbo", hub=NoCallsHub())
    assert info.value.field == "variant" and "'turbo'" in str(info.value)


def test_a_gated_entry_without_a_token_is_refused_before_any_hub_call(tmp_path):
    vault = Vault(tmp_path)
    with pytest.raises(BadInput) as info:
        provision(vault, "ltx-2.5", revision="main", hub=NoCallsHub())
    assert info.value.field == "token" and info.value.exit_code == 2
    message = str(info.value)
    assert "ltx-2.5 (Lightricks/LTX-2.5-Diffusers) is a gated repo and no access token was given" in message
    assert "accept its licence on https://huggingface.co/Lightricks/LTX-2.5-Diffusers" in message
    assert "--token-file" in message and "HF_TOKEN" in message
    assert vault.entries() == [] and not (tmp_path / "pipelines").exists()


def test_a_token_goes_to_the_hub_calls_and_nowhere_else(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    hub = TokenHub(repo_files(), lfs={"transformer/diffusion_pytorch_model.safetensors"})
    vault = Vault(tmp_path)
    entry = provision(vault, "ltx-2.5", revision="main", hub=hub, token=SECRET)
    assert hub.tokens == [SECRET, SECRET]  # model_info, then snapshot_download
    assert entry.source.repo == "Lightricks/LTX-2.5-Diffusers" and entry.license == "LTX-2 Community License"
    assert caplog.records and SECRET not in caplog.text
    assert SECRET not in entry.model_dump_json() and SECRET.encode() not in everything_in(tmp_path)


@pytest.mark.parametrize("step", ["model_info", "snapshot_download"])
@pytest.mark.parametrize(
    "error",
    [
        lambda repo: gated_error(repo),
        lambda repo: http_error("HfHubHTTPError", 401, repo),
        lambda repo: http_error("HfHubHTTPError", 403, repo, f"Forbidden (token {SECRET} lacks rights)"),
    ],
    ids=["gated", "401", "403 quoting the token"],
)
@pytest.mark.parametrize("token", [None, SECRET], ids=["no token", "token"])
def test_a_refusal_by_the_hub_says_how_to_get_access(tmp_path, step, error, token):
    repo = "someone/gated-model"
    hub = TokenHub(repo_files(), lfs=set(), allowed=token)  # the failing step is replaced below

    def refuse(*args, **kwargs):
        raise error(repo)

    setattr(hub, step, refuse)
    with pytest.raises(BadInput) as info:
        provision(Vault(tmp_path), repo, revision=COMMIT, hub=hub, token=token)
    message = str(info.value)
    assert info.value.field == "token" and info.value.exit_code == 2
    assert message.startswith(f"{repo} refused access: the repo is gated")
    assert f"accept its licence on https://huggingface.co/{repo} with your Hugging Face account" in message
    assert "--token-file PATH" in message and "HF_TOKEN" in message
    assert ("the hub refused the access token given" in message) == (token is not None)
    assert SECRET not in message and SECRET not in repr(info.value.args)
    assert Vault(tmp_path).entries() == []


def test_a_repo_that_is_not_there_is_not_called_gated(tmp_path):
    hub = FakeHub(repo_files(), lfs=set())

    def missing(*args, **kwargs):
        raise http_error("RepositoryNotFoundError", 401, "someone/typo")

    hub.model_info = missing
    with pytest.raises(BadInput) as info:
        provision(Vault(tmp_path), "someone/typo", revision="main", hub=hub, token=SECRET)
    assert info.value.field == "repo" and "is not on the hub, or is private or gated" in str(info.value)
    assert SECRET not in str(info.value)


def token_file(tmp_path, data: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "token"
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_a_token_file_holding_the_token_is_read(tmp_path):
    assert read_token_file(token_file(tmp_path, SECRET.encode() + b"\n")) == SECRET
    assert find_token(token_file(tmp_path, f"  {SECRET}\r\n".encode()), environ={"HF_TOKEN": "hf_other"}) == SECRET


@pytest.mark.parametrize(
    ("case", "make", "says"),
    [
        ("missing", lambda d: d / "nope", "does not exist"),
        ("a folder", lambda d: d, "is not a regular file"),
        ("empty", lambda d: token_file(d, b""), "is empty"),
        ("blank", lambda d: token_file(d, b"  \n\n"), "is empty"),
        ("huge", lambda d: token_file(d, SECRET.encode() * 200), "too large for an access token"),
        ("binary", lambda d: token_file(d, b"\x89PNG\r\n\x1a\n\xff\xfe" + SECRET.encode()), "is not a text file"),
        ("nul", lambda d: token_file(d, SECRET.encode() + b"\0"), "is not a text file"),
        ("two words", lambda d: token_file(d, f"token: {SECRET}".encode()), "does not hold one access token"),
        ("two lines", lambda d: token_file(d, f"{SECRET}\nhf_second".encode()), "does not hold one access token"),
        ("readable by others", lambda d: token_file(d, SECRET.encode(), 0o644), "chmod 600"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_bad_token_file_is_refused_by_name(tmp_path, case, make, says):
    path = make(tmp_path)
    with pytest.raises(BadInput) as info:
        find_token(path, environ={"HF_TOKEN": SECRET})
    assert info.value.field == "token_file" and info.value.exit_code == 2
    assert str(info.value).startswith(f"token file {path} ") and says in str(info.value)
    assert SECRET not in str(info.value)


def test_the_studio_token_variable_comes_before_hf_token(tmp_path):
    assert find_token(environ={"AIPROD_HF_TOKEN": SECRET, "HF_TOKEN": "hf_other"}) == SECRET
    assert find_token(environ={"AIPROD_HF_TOKEN": " ", "HF_TOKEN": f"{SECRET}\n"}) == SECRET
    assert find_token(environ={}) is None
    with pytest.raises(BadInput) as info:
        find_token(environ={"HF_TOKEN": f"{SECRET} {SECRET}"})
    assert info.value.field == "token" and "HF_TOKEN" in str(info.value) and SECRET not in str(info.value)


def test_the_cli_sends_the_token_to_the_hub_only(tmp_path, monkeypatch, capsys, caplog):
    from aiprod_studio import cli
    from aiprod_studio.vault import provision as provisioning

    caplog.set_level(logging.DEBUG)
    hub = TokenHub(repo_files(), lfs={"transformer/diffusion_pytorch_model.safetensors"})
    monkeypatch.setattr(provisioning, "HubClient", lambda: hub)
    monkeypatch.setenv("AIPROD_HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_TOKEN", "hf_not_this_one")
    models = tmp_path / "models"
    code = cli.main(["vault", "provision", "ltx-2.5", "--revision", "main", "--models-dir", str(models), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] and result["name"] == "ltx-2.5" and result["source"]["revision"] == COMMIT
    assert hub.tokens == [SECRET, SECRET]
    assert SECRET not in out + err and SECRET not in caplog.text
    assert SECRET.encode() not in everything_in(models)


def test_the_cli_refuses_a_gated_entry_without_a_token_and_names_the_field(cli, tmp_path, monkeypatch):
    for name in ("AIPROD_HF_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing may be asked of it
    r = cli("vault", "provision", "ltx-2.5", "--revision", "main", "--json", models_dir=tmp_path / "models")
    assert r.returncode == 2, r.stderr
    assert r.json["field"] == "token" and "is a gated repo and no access token was given" in r.json["error"]
    r = cli(
        "vault",
        "provision",
        "ltx-2.5",
        "--revision",
        "main",
        "--token-file",
        str(tmp_path / "missing"),
        "--json",
        models_dir=tmp_path / "models",
    )
    assert r.returncode == 2 and r.json["field"] == "token_file" and "does not exist" in r.json["error"]


class GatedHubServer:
    """A local stand-in for the hub (127.0.0.1) that refuses every request as a gated repo would,
    and remembers the Authorization headers it was sent."""

    def __enter__(self):
        import http.server
        import threading

        seen = self.authorizations = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                seen.append(self.headers.get("Authorization"))
                body = b'{"error": "Access to model Lightricks/LTX-2.5-Diffusers is restricted."}'
                self.send_response(403)
                self.send_header("X-Error-Code", "GatedRepo")
                self.send_header("X-Error-Message", "Access to model Lightricks/LTX-2.5-Diffusers is restricted.")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_the_real_client_sends_the_token_and_explains_a_gated_refusal(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AIPROD_HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    secret_file = token_file(tmp_path, SECRET.encode() + b"\n")
    with GatedHubServer() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        r = cli(
            "vault",
            "provision",
            "ltx-2.5",
            "--revision",
            "main",
            "--token-file",
            str(secret_file),
            "--json",
            "-vv",
            models_dir=tmp_path / "models",
        )
    assert r.returncode == 2, r.stderr
    assert hub.authorizations and set(hub.authorizations) == {f"Bearer {SECRET}"}
    assert r.json["field"] == "token" and r.json["exit_code"] == 2
    assert r.json["error"].startswith("Lightricks/LTX-2.5-Diffusers refused access: the repo is gated")
    assert f"accept its licence on {hub.url}/Lightricks/LTX-2.5-Diffusers" in r.json["error"]
    assert SECRET not in r.stdout + r.stderr
    assert not (tmp_path / "models/pipelines/ltx-2.5").exists()
