"""The model vault: manifest and store, SHA-256 verification, import/export, provisioning, the sovereignty report."""
