"""`vault provision`: the one command that touches the network, meant for a connected machine.

It resolves a revision (branch, tag or commit) to a 40-hex commit, downloads only the
files asked for (never pickled weights) with `huggingface_hub.snapshot_download` into a
hidden folder of the vault, checks every file against the hub's own metadata (sha256 for
LFS files, the git blob id for the others), and only then records the entry with its
source and license. An interrupted download stays in `.<name>.provisioning` and resumes
on the next run; a file that fails its check is deleted and nothing is registered.

`models/catalog.json` names known-good models; `vault provision ltx-video` uses its repo,
pinned revision, file patterns, license and variant (a distilled model's `variant` goes into its
manifest entry). Without a network connection it says so (exit 2) and points to `vault export` /
`vault import`, the way to bring a model to an offline machine.

A gated repo (LTX-2.5) is read with an access token: `--token-file PATH`, else `AIPROD_HF_TOKEN`,
else `HF_TOKEN` (`find_token`). The token goes to the hub calls' `token=` argument and nowhere
else: not into the manifest, the logs, an error's text or the JSON output. A gated catalogue
entry without a token is refused before any network call; a refusal by the hub (gated, 401,
403) says how to get access, naming the field `token`.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import logging
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from aiprod_studio.choices import DEFAULT_FAMILY, DEFAULT_KIND
from aiprod_studio.errors import BadInput, IntegrityError, StudioError
from aiprod_studio.generations import VARIANTS
from aiprod_studio.offline import NetworkBlocked
from aiprod_studio.vault.catalog import CATALOG_NAME, CatalogItem, MemoryNeed, catalog_path, load_catalog
from aiprod_studio.vault.manifest import (
    KIND_DIRS,
    Entry,
    FileRecord,
    Source,
    check_kind,
    check_weight_file,
    hash_with_stat,
)
from aiprod_studio.vault.results import VerifyProgress
from aiprod_studio.vault.store import Vault
from aiprod_studio.vault.tokens import (
    MAX_TOKEN_FILE,
    TOKEN_ENV,
    access_refused,
    find_token,
    how_to_get_access,
    read_token_file,
    scrub,
)
from aiprod_studio.vault.transfer import Meter

__all__ = [  # (the catalogue and the tokens live in their own files; provisioning uses both)
    "CATALOG_NAME",
    "MAX_TOKEN_FILE",
    "TOKEN_ENV",
    "CatalogItem",
    "MemoryNeed",
    "catalog_path",
    "find_token",
    "load_catalog",
    "provision",
    "read_token_file",
]

log = logging.getLogger(__name__)

# Never fetched: pickled or otherwise unusable weight formats (only safetensors are accepted).
IGNORED_PATTERNS = (
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.pkl",
    "*.pickle",
    "*.gguf",
    "*.onnx",
    "*.onnx_data",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
    ".gitattributes",
)
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Errors (by class name, from the hub client's HTTP stack: httpx, requests, urllib3) that mean
# "the hub could not be reached", as opposed to an answer from it.
NETWORK_ERRORS = {
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TimeoutException",
    "NetworkError",
    "ConnectionError",
    "Timeout",
    "NewConnectionError",
    "MaxRetryError",
    "NameResolutionError",
    "ProxyError",
    "OfflineModeIsEnabled",
    "LocalEntryNotFoundError",
}
NETWORK_ERRNOS = {
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EHOSTUNREACH,
    errno.EHOSTDOWN,
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ETIMEDOUT,
}


class HubLike(Protocol):
    """What provisioning needs from the hub (the real client, or a fake in tests)."""

    def model_info(self, repo_id: str, revision: str, token: str | None = None) -> Any: ...

    def snapshot_download(
        self, repo_id: str, revision: str, local_dir: Path, allow_patterns: list[str], token: str | None = None
    ) -> Any: ...


class HubClient:
    """The real Hugging Face Hub, switched online only for the duration of one call."""

    @contextlib.contextmanager
    def _online(self) -> Iterator[Any]:
        import huggingface_hub.constants as constants  # reads HF_HUB_OFFLINE=1 if first imported here

        constants.HF_HUB_OFFLINE = False
        try:
            yield constants
        finally:
            constants.HF_HUB_OFFLINE = True  # the rest of the process stays offline

    def model_info(self, repo_id: str, revision: str, token: str | None = None) -> Any:
        with self._online():
            from huggingface_hub import HfApi

            return HfApi().model_info(repo_id, revision=revision, files_metadata=True, token=token)

    def snapshot_download(
        self, repo_id: str, revision: str, local_dir: Path, allow_patterns: list[str], token: str | None = None
    ) -> Any:
        with self._online():
            from huggingface_hub import snapshot_download

            return snapshot_download(
                repo_id,
                revision=revision,
                local_dir=str(local_dir),
                allow_patterns=allow_patterns,
                max_workers=4,
                token=token,
            )


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _license_of(info: Any) -> str | None:
    card: Any = getattr(info, "card_data", None) or getattr(info, "cardData", None)
    value = card.get("license") if hasattr(card, "get") else getattr(card, "license", None)
    if value:
        return str(value)
    for tag in getattr(info, "tags", None) or []:
        if str(tag).startswith("license:"):
            return str(tag).split(":", 1)[1]
    return None


def _network_cause(exc: BaseException | None) -> BaseException | None:
    """The first error of `exc`'s chain saying the hub could not be reached, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (
            isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror, NetworkBlocked))
            or (isinstance(exc, OSError) and exc.errno in NETWORK_ERRNOS)
            or NETWORK_ERRORS & {c.__name__ for c in type(exc).__mro__}
        ):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _explain(exc: Exception, repo: str, revision: str, token: str | None = None) -> StudioError:
    """The hub client's error in words for the user (never holding the token)."""
    error = _explain_error(exc, repo, revision, token)
    error.args = (scrub(str(error), token),)
    return error


def _explain_error(exc: Exception, repo: str, revision: str, token: str | None) -> StudioError:
    kind = type(exc).__name__
    if access_refused(exc):
        sent = (
            "the hub refused the access token given: "
            if token
            else "no access token was given (HF_TOKEN, AIPROD_HF_TOKEN or --token-file): "
        )
        return BadInput(
            f"{repo} refused access: the repo is gated, or needs an account allowed to read it; {sent}"
            + how_to_get_access(repo),
            field="token",
        )
    if (cause := _network_cause(exc)) is not None:
        host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").netloc or "huggingface.co"
        reason = (
            "the hub client is in offline mode"
            if type(cause).__name__ == "OfflineModeIsEnabled"
            else str(cause) or type(cause).__name__
        )
        return BadInput(
            f"cannot reach {host}: {reason}; provision needs a network connection — run it on a "
            "connected machine and bring the model over with vault export/import"
        )
    if "RevisionNotFound" in kind or "EntryNotFound" in kind:
        return BadInput(f"revision {revision!r} cannot be resolved to a commit of {repo}: {exc}", field="revision")
    if "RepositoryNotFound" in kind:
        return BadInput(
            f"repo {repo!r} is not on the hub, or is private or gated and needs an access token "
            f"(--token-file PATH or HF_TOKEN): {exc}",
            field="repo",
        )
    return StudioError(f"the hub client failed on {repo}@{revision}: {type(exc).__name__}: {exc}")


def provision(
    vault: Vault,
    repo: str,
    revision: str | None = None,
    name: str | None = None,
    allow: list[str] | None = None,
    kind: str | None = None,
    family: str | None = None,
    license: str | None = None,
    hub: HubLike | None = None,
    progress: Callable[[VerifyProgress], None] | None = None,
    variant: str | None = None,
    token: str | None = None,
) -> Entry:
    """Download `repo` at `revision` into the vault, check it against the hub's hashes, record it.

    `token`: an access token for a gated or private repo (see `find_token`), sent to the hub calls only."""
    # 1. A catalogue name fills in everything the user did not say.
    gated = False
    if "/" not in repo:
        items = {i.name: i for i in load_catalog(vault)}
        if repo not in items:
            raise BadInput(
                f"repo must be owner/name or a catalogue name ({', '.join(items) or 'none'}), got {repo!r}",
                field="repo",
            )
        item = items[repo]
        repo, revision = item.repo, revision or item.revision
        name, allow = name or item.name, allow or item.allow or None
        kind, family, license = kind or item.kind, family or item.family, license or item.license
        variant, gated = variant or item.variant, item.gated
    if not REPO_RE.match(repo):
        raise BadInput(f"repo must look like owner/name, got {repo!r}", field="repo")
    if not revision:
        raise BadInput(
            "revision is required: a branch, tag or 40-hex commit (it is resolved and recorded)", field="revision"
        )
    if variant is not None and variant not in VARIANTS:
        raise BadInput(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}", field="variant")
    kind, family = kind or DEFAULT_KIND, family or DEFAULT_FAMILY
    name = name or repo.split("/")[1]
    vault.check_new_name(name)
    kind = check_kind(kind)
    if gated and not token:  # said before anything goes out
        raise BadInput(
            f"{name} ({repo}) is a gated repo and no access token was given: " + how_to_get_access(repo),
            field="token",
        )
    hub = hub or HubClient()
    auth = {"token": token} if token else {}  # the only place the token goes

    # 2. Resolve the revision to the commit everything is pinned to.
    try:
        info = hub.model_info(repo, revision=revision, **auth)
    except StudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - the hub client's errors are translated for the user
        raise _explain(exc, repo, revision, token) from None
    commit = str(getattr(info, "sha", "") or "")
    if not COMMIT_RE.match(commit):
        raise BadInput(
            f"revision {revision!r} of {repo} did not resolve to a 40-hex commit (got {commit!r})", field="revision"
        )
    if COMMIT_RE.match(revision) and commit != revision:
        raise IntegrityError(f"the hub answered commit {commit} for the pinned revision {revision}")

    # 3. Choose the files: the allowed patterns, never pickled weights.
    siblings = {s.rfilename: s for s in (getattr(info, "siblings", None) or [])}
    chosen = sorted(
        f
        for f in siblings
        if (not allow or any(fnmatch.fnmatch(f, p) for p in allow))
        and not any(fnmatch.fnmatch(Path(f).name, p) for p in IGNORED_PATTERNS)
    )
    if not chosen:
        raise BadInput(f"no safetensors-format files of {repo}@{commit[:12]} match {allow or ['*']}", field="allow")
    if kind == "pipeline" and "model_index.json" not in chosen:
        raise BadInput(f"{repo} has no model_index.json among the chosen files: not a diffusers pipeline", field="repo")

    # 4. Download into a hidden folder (kept on failure so the next run resumes).
    rel = f"{KIND_DIRS[kind]}/{name}"
    target = vault.root / rel
    if target.exists():
        raise BadInput(f"{target} already exists but is not in the manifest; move it away first", field="name")
    tmp = target.with_name(f".{name}.provisioning")
    tmp.mkdir(parents=True, exist_ok=True)
    log.info("provisioning %s@%s (%d files) into %s", repo, commit, len(chosen), tmp)
    try:
        hub.snapshot_download(repo, revision=commit, local_dir=tmp, allow_patterns=chosen, **auth)
    except Exception as exc:  # noqa: BLE001
        raise _explain(exc, repo, commit, token) from None
    shutil.rmtree(tmp / ".cache", ignore_errors=True)  # the hub client's own bookkeeping

    # 5. Check every file against the hub's metadata before anything is recorded.
    meter = Meter(sum(getattr(siblings[f], "size", 0) or 0 for f in chosen), progress, len(chosen), None)
    records: dict[str, FileRecord] = {}
    stats: dict[str, list[int]] = {}
    bad: list[str] = []
    for f in chosen:
        p, s = tmp / f, siblings[f]
        if not p.is_file() or p.is_symlink():
            bad.append(f"{f}: not downloaded")
            continue
        digest, key = hash_with_stat(p, on_bytes=meter.add)
        meter.files_done += 1
        lfs = getattr(s, "lfs", None)
        want_sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
        size = p.stat().st_size
        if getattr(s, "size", None) is not None and size != s.size:
            bad.append(f"{f}: {size} bytes, the hub says {s.size}")
        elif want_sha and digest != want_sha:
            bad.append(f"{f}: sha256 {digest}, the hub says {want_sha}")
        elif not want_sha and getattr(s, "blob_id", None) and _git_blob_sha1(p) != s.blob_id:
            bad.append(f"{f}: git blob id differs from the hub's {s.blob_id}")
        else:
            try:
                check_weight_file(p)
            except IntegrityError as exc:
                bad.append(str(exc))
                continue
            records[f] = FileRecord(sha256=digest, size=size)
            if key is not None:
                stats[f] = key
    on_disk = {p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file() or p.is_symlink()}
    bad.extend(f"{f}: not asked for" for f in sorted(on_disk - set(chosen)))
    if bad:
        for f in bad:
            with contextlib.suppress(OSError):
                (tmp / f.split(":")[0]).unlink()
        raise IntegrityError(
            f"provisioning {repo}@{commit[:12]} failed its checks, nothing was recorded: " + "; ".join(bad)
        )

    # 6. Into place, then into the manifest with source and license.
    os.replace(tmp, target)
    entry = vault.record(
        name,
        kind,
        family,
        rel,
        files=records,
        stats=stats,
        source=Source(repo=repo, revision=commit),
        license=license or _license_of(info) or "unknown",
        variant=variant,
    )
    log.info("provisioned %s from %s@%s", name, repo, commit)
    return entry
