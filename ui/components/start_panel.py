"""What the Render tab says first: where to start, which model is loaded, whether it is the test model."""

from __future__ import annotations

from aiprod_studio.vault.manifest import Entry

TEST_MODEL_NOTE = (
    "⚠️ **Test model.** `{name}` is the studio's tiny built-in LTX-2 model with random weights: it proves the "
    "whole render path works offline, but its clips look like coloured noise. Put real LTX-2 weights in the vault "
    "(see the README, *Models*) and pick them here."
)
START_NOTE = (
    "**Start here:** describe the clip in *Prompt* and press **Generate** (Ctrl+Enter in the prompt works too). "
    "Model: `{name}`. A storyboard of several shots is in *Storyboard*; models are added in *Model Vault*."
)
NO_MODEL_NOTE = (
    "**No model yet.** The vault holds no pipeline: run `aiprod-studio vault make-tiny` for the test model, or "
    "import real LTX-2 weights in *Model Vault* (see the README, *Models*)."
)


def start_note(entry: Entry | None) -> str:
    """What the page says first: where to start, which model is loaded, and whether it is the test model."""
    if entry is None:
        return NO_MODEL_NOTE
    text = START_NOTE.format(name=entry.name)
    return text + ("\n\n" + TEST_MODEL_NOTE.format(name=entry.name) if entry.test_model else "")
