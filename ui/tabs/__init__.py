"""The studio's tabs, one module each: a layout function, a wiring function, module-level handlers."""
