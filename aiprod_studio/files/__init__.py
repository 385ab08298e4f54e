"""Durable files: atomic replacement, locks that die with their process, partial outputs."""
