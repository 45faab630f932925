"""The agent's sidecar HTTP API (Starlette on hypercorn's trio worker). Not built yet."""
