"""Pieces of the UI shared by several tabs."""
