"""`vault provision` against a fake hub: pinned commits, hub hashes, licences, nothing half-done."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from aiprod_studio import offline
from aiprod_studio.errors import BadInput, IntegrityError, StudioError
from aiprod_studio.vault.provision import HubClient, load_catalog, provision
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


class NoCallsHub:
    """A hub that must not be called at all."""

    def model_info(self, *args, **kwargs):
        raise AssertionError("the hub was called")

    snapshot_download = model_info


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
