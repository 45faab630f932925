"""A wire-level ArangoDB double for tests (see docs/stores.md).

from arango_double import ArangoDouble

with ArangoDouble(password="pw") as arango:
    ArangoClient(hosts=arango.url).db("_system", username="root", password="pw")
"""

from .api import Request as Request
from .api import Response as Response
from .double import ArangoDouble as ArangoDouble
from .errors import ArangoError as ArangoError
from .server import RecordedRequest as RecordedRequest

__all__ = ["ArangoDouble", "ArangoError", "RecordedRequest", "Request", "Response"]
