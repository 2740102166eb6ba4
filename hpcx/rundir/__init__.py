"""The run directory: the contract between the login side and the job (stdlib only)."""
