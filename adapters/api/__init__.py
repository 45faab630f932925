"""The HTTP API adapter family (`api.request`): the adapter, its input checks (`inputs`) and its
transport (`transport`). The host policy and body cap it relies on live in `wpk.adapters.guards`.
"""

from .adapter import ApiAdapter

__all__ = ["ApiAdapter"]
