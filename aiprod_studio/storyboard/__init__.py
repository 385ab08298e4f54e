"""Storyboards: the script split into shots (rule-based scenarist), their database tables, the CLI."""
