"""wpk adapters: how steps act on the world (core, shell, HTTP API, Kubernetes)."""
