"""The Gradio app: one module per tab, the named API endpoints, the launcher.

Importing it sets the offline environment before Gradio is loaded.
"""

from aiprod_studio import offline as _offline

_offline.enforce()
