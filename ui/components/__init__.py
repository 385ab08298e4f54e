"""Pieces of the UI: parts shared by several tabs, and a tab's groups of handlers, each named after what it does."""
