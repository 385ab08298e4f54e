"""Access tokens for gated hub repositories: where one is found, how it is checked, and how it
is kept out of every message (`vault provision` sends it to the hub and nowhere else)."""

from __future__ import annotations

import os
from pathlib import Path

from aiprod_studio.errors import BadInput

# Where an access token for gated repos is looked for, first found wins (after --token-file).
TOKEN_ENV = ("AIPROD_HF_TOKEN", "HF_TOKEN")
MAX_TOKEN_FILE = 4096  # bytes: an access token is one line of a few dozen characters


def _check_token(text: str, where: str, field: str) -> str:
    """`text` stripped, if it looks like one access token; the error names `where`, never the text."""
    token = text.strip()
    if not token:
        raise BadInput(f"{where} is empty: it must hold your access token", field=field)
    if any(not 33 <= ord(c) < 127 for c in token):
        raise BadInput(
            f"{where} does not hold one access token (it has spaces, line breaks or other characters "
            "no token has): put the token alone in it",
            field=field,
        )
    return token


def read_token_file(path: str | Path) -> str:
    """The access token in `path`: a small text file holding only the token, readable by its owner only."""
    path = Path(path)
    where = f"token file {path}"
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BadInput(f"{where} does not exist", field="token_file") from None
    except OSError as exc:
        raise BadInput(f"{where} cannot be read: {exc.strerror or type(exc).__name__}", field="token_file") from None
    if not path.is_file():
        raise BadInput(f"{where} is not a regular file", field="token_file")
    if st.st_size > MAX_TOKEN_FILE:
        raise BadInput(
            f"{where} is {st.st_size:,} bytes: too large for an access token (at most {MAX_TOKEN_FILE:,}); "
            "is it the right file?",
            field="token_file",
        )
    if os.name == "posix" and st.st_mode & 0o077:
        raise BadInput(
            f"{where} can be read or changed by other users (mode {st.st_mode & 0o777:o}): "
            f"make it yours alone with `chmod 600 {path}`",
            field="token_file",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{where} cannot be read: {exc.strerror or type(exc).__name__}", field="token_file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{where} is not a text file: it must hold only the access token", field="token_file") from None
    if "\0" in text:
        raise BadInput(f"{where} is not a text file: it must hold only the access token", field="token_file")
    return _check_token(text, where, "token_file")


def find_token(token_file: str | Path | None = None, environ: dict[str, str] | None = None) -> str | None:
    """The access token to send to the hub: `token_file`'s, else `AIPROD_HF_TOKEN`'s, else `HF_TOKEN`'s."""
    if token_file:
        return read_token_file(token_file)
    env = os.environ if environ is None else environ
    for name in TOKEN_ENV:
        if env.get(name, "").strip():
            return _check_token(env[name], f"the environment variable {name}", "token")
    return None


def scrub(text: str, token: str | None) -> str:
    """`text` with every copy of the token replaced (the hub's messages should never hold it; in case)."""
    return text.replace(token, "<token>") if token else text


def hub_page(repo: str) -> str:
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{repo}"


def how_to_get_access(repo: str) -> str:
    return (
        f"accept its licence on {hub_page(repo)} with your Hugging Face account, then run again with that "
        "account's access token (--token-file PATH, a file holding only the token, or the HF_TOKEN environment "
        "variable)"
    )


def access_refused(exc: BaseException | None) -> bool:
    """True when `exc`'s chain says the hub refused access: a gated repo, or HTTP 401/403 (not a plain
    "repository not found")."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names = {c.__name__ for c in type(exc).__mro__}
        if "GatedRepoError" in names:
            return True
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if "RepositoryNotFoundError" not in names and status in (401, 403):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
