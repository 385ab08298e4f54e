"""The engine: everything that touches tensors (devices, pipelines, rendering, media).

Importing it sets the offline environment first, before any Hugging Face library is
loaded. Heavy submodules are imported where they are used, never at import time.
"""

from aiprod_studio import offline as _offline

_offline.enforce()
