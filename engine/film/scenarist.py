"""The local-LLM scenarist: a causal LM from the vault rewrites each shot's prompt.

The model is an entry of kind `scenarist` (a transformers causal LM in safetensors),
loaded from its folder only (`local_files_only=True`, no remote code). Its output is
constrained to a JSON string: during generation every token that would put a quote, a
backslash, a brace or a line break into the string is masked, so `{"prompt": "<output>"}`
always parses; the parsed value is then validated (enough words, not a loop of one word,
not too long). A shot whose output fails keeps its rule-based prompt, and the report says
why. Sampling is seeded per shot, so the same storyboard gets the same rewrite.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import torch
from pydantic import BaseModel, ValidationError, field_validator

from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import MAX_PROMPT_CHARS, MAX_SEED
from aiprod_studio.storyboard.board import Storyboard
from aiprod_studio.storyboard.scenarist import shot_prompt
from aiprod_studio.text import check_text
from aiprod_studio.vault.manifest import Entry
from aiprod_studio.vault.store import Vault

log = logging.getLogger(__name__)

INSTRUCTION = "Rewrite this film shot as one vivid video prompt: subject, action, camera, light.\nShot: {text}\nPrompt:"
# the Render tab's Enhance: one short idea → the detailed form LTX-2 prompts want
PROMPT_INSTRUCTION = (
    "Rewrite this idea as one detailed video prompt: subject, action, camera, light, sound.\nIdea: {text}\nPrompt:"
)
BANNED_CHARS = set('"\\{}\n\r\t') | {chr(c) for c in range(32)}
MIN_WORDS = 3


class _Rewrite(BaseModel):
    prompt: str

    @field_validator("prompt")
    @classmethod
    def _useful(cls, v: str) -> str:
        words = v.split()
        if len(words) < MIN_WORDS:
            raise ValueError(f"has {len(words)} words, fewer than {MIN_WORDS}")
        if len(set(w.lower() for w in words)) < max(2, len(words) // 3):
            raise ValueError("repeats the same few words")
        if len(v) > MAX_PROMPT_CHARS - 200:
            raise ValueError("is too long")
        return v.strip()


class _JsonStringOnly:
    """A logits processor that masks tokens which cannot appear inside a JSON string literal."""

    def __init__(self, tokenizer: Any):
        vocab = len(tokenizer)
        self.mask = torch.zeros(vocab, dtype=torch.bool)
        for token_id in range(vocab):
            text = tokenizer.decode([token_id])
            if any(ch in BANNED_CHARS for ch in text):
                self.mask[token_id] = True

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.masked_fill(self.mask[: scores.shape[-1]].to(scores.device), float("-inf"))


_lock = threading.Lock()


def scenarist_entry(vault: Vault, name: str | None = None) -> Entry:
    entries = vault.entries(kind="scenarist")
    if name:
        return vault.get(name, kind="scenarist", field="scenarist")
    if not entries:
        raise BadInput(
            "scenarist: the vault holds no local LLM (an entry of kind `scenarist`); import one "
            "with `vault import FOLDER --kind scenarist --family llm`",
            field="scenarist",
        )
    return sorted(entries, key=lambda e: (e.test_model, e.name))[0]


def _loaded(vault: Vault, name: str | None) -> tuple[Entry, Any, Any, Any]:
    """(entry, tokenizer, model, logits processors) of the vault's scenarist, from local files only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    entry = scenarist_entry(vault, name)
    vault.require_ok(entry)
    folder = vault.entry_dir(entry)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, use_safetensors=True, trust_remote_code=False, dtype=torch.float32
    ).eval()
    return entry, tokenizer, model, LogitsProcessorList([_JsonStringOnly(tokenizer)])


def _rewrite(
    loaded: tuple[Entry, Any, Any, Any], instruction: str, seed: int, max_new_tokens: int, temperature: float
) -> tuple[str, str | None, str]:
    """(the model's text, the usable rewrite or None, why not) for one instruction, sampled from `seed`."""
    _entry, tokenizer, model, processors = loaded
    inputs = tokenizer(instruction, return_tensors="pt")
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=temperature,
            top_p=0.95,
            logits_processor=processors,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    try:
        return text, _Rewrite.model_validate(json.loads('{"prompt": "' + text + '"}')).prompt, ""
    except (ValueError, ValidationError) as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return text, None, f"LLM output {reason}"


def _check_tokens(max_new_tokens: int) -> None:
    if not 1 <= max_new_tokens <= 400:
        raise BadInput(f"max_new_tokens must be between 1 and 400, got {max_new_tokens}", field="max_new_tokens")


def enhance(
    vault: Vault, board: Storyboard, name: str | None = None, max_new_tokens: int = 48, temperature: float = 0.8
) -> tuple[Storyboard, list[dict[str, Any]]]:
    """The storyboard with LLM-rewritten prompts, and per shot what was used and why."""
    _check_tokens(max_new_tokens)
    with _lock:
        loaded = _loaded(vault, name)
        shots, report = [], []
        try:
            for i, shot in enumerate(board.shots):
                instruction = INSTRUCTION.format(text=shot.text or shot.prompt)
                text, rewrite, reason = _rewrite(loaded, instruction, shot.seed, max_new_tokens, temperature)
                if rewrite is None:
                    shots.append(shot)
                    report.append({"shot": i + 1, "used": "rules", "reason": reason, "output": text})
                    continue
                shots.append(shot.model_copy(update={"prompt": shot_prompt(rewrite, board.style, shot.title)}))
                report.append({"shot": i + 1, "used": "llm", "reason": "", "output": text})
        finally:
            del loaded
    entry = scenarist_entry(vault, name)
    log.info("scenarist %s rewrote %d of %d shots", entry.name, sum(r["used"] == "llm" for r in report), len(report))
    return board.model_copy(update={"shots": shots}), report


def enhance_prompt(
    vault: Vault, prompt: str, seed: int = 0, name: str | None = None, max_new_tokens: int = 96
) -> dict[str, Any]:
    """One short prompt rewritten into a detailed one (subject, action, camera, light, sound), seeded:
    `{"prompt", "used" ("llm" or "kept"), "reason", "output", "scenarist"}`. An unusable output keeps the prompt."""
    _check_tokens(max_new_tokens)
    text = " ".join(str(prompt).split())
    if not text:
        raise BadInput("prompt must not be empty: write a short idea to enhance", field="prompt")
    if len(text) > MAX_PROMPT_CHARS:
        raise BadInput(f"prompt must be at most {MAX_PROMPT_CHARS} characters, got {len(text)}", field="prompt")
    try:
        check_text(text)
    except ValueError as exc:
        raise BadInput(f"prompt {exc}", field="prompt") from None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise BadInput(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}"[:200], field="seed")
    with _lock:
        loaded = _loaded(vault, name)
        try:
            output, rewrite, reason = _rewrite(loaded, PROMPT_INSTRUCTION.format(text=text), seed, max_new_tokens, 0.8)
        finally:
            entry = loaded[0]
            del loaded
    return {
        "prompt": rewrite or prompt,
        "used": "llm" if rewrite else "kept",
        "reason": reason,
        "output": output,
        "scenarist": entry.name,
    }
