"""ArangoDB's error answers: HTTP status, `errorNum` and message, as the server sends them.

Every failure inside the double is an `ArangoError`; the HTTP layer turns it into the JSON body
`{"error": true, "code": status, "errorNum": n, "errorMessage": msg}` that python-arango maps to
its exceptions (`error_code`, `error_message`, `http_code`).
"""

from __future__ import annotations

from typing import Any

UNAUTHORIZED = 11
FORBIDDEN = 11  # ArangoDB uses 11 for both: 401 unauthorized, 403 forbidden
BAD_PARAMETER = 10
CONFLICT = 1200
DOCUMENT_NOT_FOUND = 1202
DATA_SOURCE_NOT_FOUND = 1203
DOCUMENT_HANDLE_BAD = 1205
DUPLICATE_NAME = 1207
ILLEGAL_NAME = 1208
UNIQUE_CONSTRAINT_VIOLATED = 1210
INDEX_NOT_FOUND = 1212
DOCUMENT_KEY_BAD = 1221
DOCUMENT_TYPE_INVALID = 1227
DATABASE_NOT_FOUND = 1228
USE_SYSTEM_DATABASE = 1230
QUERY_PARSE = 1501
QUERY_VARIABLE_NAME_UNKNOWN = 1512
QUERY_FUNCTION_NAME_UNKNOWN = 1540
QUERY_FUNCTION_ARGUMENT_NUMBER_MISMATCH = 1541
QUERY_BIND_PARAMETER_MISSING = 1551
QUERY_BIND_PARAMETER_UNDECLARED = 1552
QUERY_BIND_PARAMETER_TYPE = 1553
QUERY_ACCESS_AFTER_MODIFICATION = 1579
QUERY_EMPTY = 1502
CURSOR_NOT_FOUND = 1600
TRANSACTION_UNREGISTERED_COLLECTION = 1652
TRANSACTION_DISALLOWED_OPERATION = 1653
TRANSACTION_NOT_FOUND = 1655
HTTP_NOT_FOUND = 404
HTTP_METHOD_NOT_ALLOWED = 405


class ArangoError(Exception):
    """One error answer. `extra` carries attributes some errors add (`_key`, `_rev` on 412)."""

    def __init__(self, status: int, num: int, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.num = num
        self.message = message
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": True,
            "code": self.status,
            "errorNum": self.num,
            "errorMessage": self.message,
            **self.extra,
        }


def unauthorized() -> ArangoError:
    return ArangoError(401, UNAUTHORIZED, "not authorized to execute this request")


def database_not_found() -> ArangoError:
    return ArangoError(404, DATABASE_NOT_FOUND, "database not found")


def collection_not_found(name: str | None = None) -> ArangoError:
    return ArangoError(
        404, DATA_SOURCE_NOT_FOUND, "collection or view not found" + (f": {name}" if name else "")
    )


def document_not_found() -> ArangoError:
    return ArangoError(404, DOCUMENT_NOT_FOUND, "document not found")


def write_conflict() -> ArangoError:
    return ArangoError(409, CONFLICT, "write-write conflict")


def revision_conflict(status: int, current: dict[str, Any] | None) -> ArangoError:
    extra = {k: current[k] for k in ("_id", "_key", "_rev")} if current else {}
    return ArangoError(status, CONFLICT, "conflict, _rev values do not match", extra)


def unique_violated(index: str, index_type: str, fields: list[str], key: str) -> ArangoError:
    over = ", ".join(f"'{f}'" for f in fields)
    return ArangoError(
        409,
        UNIQUE_CONSTRAINT_VIOLATED,
        f"unique constraint violated - in index {index} of type {index_type} over {over}; "
        f"conflicting key: {key}",
    )


def bad_parameter(message: str) -> ArangoError:
    return ArangoError(400, BAD_PARAMETER, message)


def not_found_path() -> ArangoError:
    return ArangoError(404, HTTP_NOT_FOUND, "unknown path")


def transaction_not_found(trx_id: str) -> ArangoError:
    return ArangoError(404, TRANSACTION_NOT_FOUND, f"transaction '{trx_id}' not found")
