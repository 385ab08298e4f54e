"""AIPROD Studio core: settings, recipes, history, the model vault and the CLI.

The core never imports torch or gradio (see tests/test_layering.py).
"""

__version__ = "0.1.0"
