"""The Gradio app: one module per tab, the named API endpoints, the launcher."""
