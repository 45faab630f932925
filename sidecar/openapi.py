"""The OpenAPI 3.1 document of the sidecar API, written as data.

It is the contract: `GET /openapi.json` serves it, docs/api.md is checked against it by a test,
and schemathesis drives a live server from it. Keep it in step with `routes/` (a test compares
the paths and methods with the route table).
"""

from __future__ import annotations

from typing import Any

NULLABLE_STRING = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "description": "ISO 8601 UTC time, or null"}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. not_found"},
                "message": {"type": "string", "description": "one line for a person"},
                "details": {"type": "object"},
            },
        }
    },
}

DIAGNOSTIC = {
    "type": "object",
    "required": ["path", "line", "column", "severity", "code", "message", "pointer"],
    "properties": {
        "path": {"type": "string", "description": "the document: <request> for an API body"},
        "line": {"type": "integer", "minimum": 0, "description": "1-based; 0 = the whole document"},
        "column": {"type": "integer", "minimum": 0},
        "severity": {"enum": ["error", "warning"]},
        "code": {"type": "string"},
        "message": {"type": "string"},
        "pointer": {"type": "string", "description": "the field, e.g. spec.steps[0].uses ('' = document)"},
    },
}

CONTENT = {
    "description": "The runbook: YAML text, or the document as a JSON object (its diagnostics then "
    "point at lines of json.dumps(object, indent=2))",
    "oneOf": [{"type": "string"}, {"type": "object"}],
}

ITEM = {
    "type": "object",
    "required": ["index", "status", "attempts", "outputs", "error"],
    "properties": {
        "index": {"type": "integer"},
        "status": {"type": "string"},
        "attempts": {"type": "integer"},
        "outputs": {},
        "error": NULLABLE_STRING,
    },
}

STEP = {
    "type": "object",
    "required": ["id", "status", "attempts", "started_at", "finished_at", "outputs", "error"],
    "properties": {
        "id": {"type": "string"},
        "status": {
            "enum": [
                "pending",
                "running",
                "completed",
                "failed",
                "skipped",
                "cancelled",
                "simulated",
                "compensating",
                "compensated",
                "compensation_failed",
            ]
        },
        "attempts": {"type": "integer", "minimum": 0},
        "started_at": TIME,
        "finished_at": TIME,
        "outputs": {"description": "the step's outputs (a list, one per item, for for_each)"},
        "error": NULLABLE_STRING,
        "reason": {"type": "string"},
        "compensation_error": {"type": "string"},
        "compensation_resumed": {
            "type": "string",
            "description": "its compensation was taken over from a lost agent: run again or not, why",
        },
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
    },
}

STATUS = {
    "enum": [
        "pending",
        "running",
        "completed",
        "failed",
        "cancelled",
        "rolling_back",
        "rolled_back",
        "rollback_failed",
    ]
}

RECORD = {
    "type": "object",
    "description": "The execution record: the same shape as `wpk run --format json`.",
    "required": [
        "execution_id",
        "workflow_id",
        "status",
        "priority",
        "dry_run",
        "current_step",
        "steps_completed",
        "steps",
        "started_at",
        "finished_at",
        "error",
    ],
    "properties": {
        "execution_id": {"type": "string"},
        "workflow_id": {"type": "string", "description": "name-version"},
        "status": {"$ref": "#/components/schemas/Status"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 100},
        "dry_run": {"type": "boolean"},
        "current_step": NULLABLE_STRING,
        "steps_completed": {"type": "integer", "minimum": 0},
        "steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
        "started_at": TIME,
        "finished_at": TIME,
        "error": NULLABLE_STRING,
        "plan": {"type": ["object", "null"], "description": "dry-runs only: the plan"},
        "waiting_reason": {
            "type": ["string", "null"],
            "description": "pending executions only: why it waits, when that can be said",
        },
    },
}

SUMMARY = {
    "type": "object",
    "required": [
        "execution_id",
        "workflow_id",
        "workflow_name",
        "status",
        "priority",
        "dry_run",
        "created_at",
        "started_at",
        "finished_at",
    ],
    "properties": {
        "execution_id": {"type": "string"},
        "workflow_id": {"type": "string"},
        "workflow_name": {"type": "string"},
        "status": {"$ref": "#/components/schemas/Status"},
        "priority": {"type": "integer"},
        "dry_run": {"type": "boolean"},
        "created_at": TIME,
        "started_at": TIME,
        "finished_at": TIME,
    },
}

LOG_LINE = {
    "type": "object",
    "required": ["offset", "time", "step", "item", "stream", "line"],
    "properties": {
        "offset": {"type": "integer", "minimum": 0, "description": "pass offset+1 as ?offset= to resume"},
        "time": TIME,
        "step": NULLABLE_STRING,
        "item": {"type": ["integer", "null"]},
        "stream": {"type": "string", "description": "stdout, stderr or info"},
        "line": {"type": "string"},
    },
}

ACCEPTED = {
    "type": "object",
    "required": ["execution_id", "status"],
    "properties": {"execution_id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"}},
}


AGENT = {
    "type": "object",
    "required": [
        "agent_id",
        "labels",
        "capacity",
        "version",
        "state",
        "heartbeat_at",
        "started_at",
        "adapters",
    ],
    "properties": {
        "agent_id": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "capacity": {"type": "integer", "minimum": 1},
        "version": {"type": "string"},
        "state": {"enum": ["created", "running", "paused", "stopped", "failed"]},
        "heartbeat_at": TIME,
        "started_at": TIME,
        "adapters": {"type": "array", "items": {"type": "string"}},
        "requested": {
            "enum": ["pause", "resume", "drain", None],
            "description": "a request recorded for the agent, applied at its next heartbeat",
        },
    },
}

QUEUED = {
    "type": "object",
    "required": [
        "position",
        "execution_id",
        "workflow_id",
        "priority",
        "effective_priority",
        "created_at",
        "not_before",
        "labels",
        "waiting_reason",
    ],
    "properties": {
        "position": {"type": "integer", "minimum": 1, "description": "1 = claimed next"},
        "execution_id": {"type": "string"},
        "workflow_id": {"type": "string"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 100},
        "effective_priority": {"type": "number", "description": "priority + aging_rate x minutes waited"},
        "created_at": TIME,
        "not_before": TIME,
        "labels": {"type": "object", "description": "placement: the labels an agent must have"},
        "waiting_reason": {
            "type": ["string", "null"],
            "description": "why it waits, when that can be said (no agent has the labels, not before …)",
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "malformed JSON, or a field or query parameter of the wrong shape",
        401: "missing or wrong bearer token",
        408: "the request body did not arrive within 30 s",
        404: "no such execution",
        409: "the operation does not apply to the execution in its status",
        413: "request body over the limit",
        422: "the runbook or its parameters are invalid (nothing was queued)",
        500: "internal error (no details are given to the client)",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in (*codes, 500)}


def _id_param() -> dict[str, Any]:
    return {"name": "execution_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _links() -> dict[str, Any]:
    """What a client does next with the id it was given (schemathesis follows these too)."""
    by_id = {"execution_id": "$response.body#/execution_id"}
    return {
        name: {"operationId": operation, "parameters": dict(by_id)}
        for name, operation in (
            ("GetExecution", "getExecution"),
            ("Logs", "logs"),
            ("Cancel", "cancel"),
            ("Rollback", "rollback"),
        )
    }


def _agent_errors(*codes: int) -> dict[str, Any]:
    text = {
        401: "missing or wrong bearer token",
        404: "no such agent",
        409: "the lifecycle does not allow it from the agent's state (details: state, to)",
        500: "internal error (no details are given to the client)",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in (*codes, 500)}


def _agent_paths() -> dict[str, Any]:
    agent_id = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}
    control = {
        "pause": "Pause: claim nothing new, finish what runs",
        "resume": "Resume a paused agent",
        "drain": "Drain: claim nothing new, finish what runs within --grace, hand the rest over, then stop",
    }
    paths: dict[str, Any] = {
        "/agents": {
            "get": {
                "operationId": "listAgents",
                "summary": "The agents registered in the store, with state, labels and last heartbeat",
                "security": AUTH,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["agents"],
                            "properties": {"agents": {"type": "array", "items": _ref("Agent")}},
                        },
                        "every agent",
                    ),
                    **_agent_errors(401),
                },
            }
        },
        "/agents/{agent_id}": {
            "get": {
                "operationId": "getAgent",
                "summary": "One agent",
                "security": AUTH,
                "parameters": [agent_id],
                "responses": {"200": _json(_ref("Agent"), "the agent"), **_agent_errors(401, 404)},
            }
        },
    }
    for action, summary in control.items():
        paths[f"/agents/{{agent_id}}/{action}"] = {
            "post": {
                "operationId": f"{action}Agent",
                "summary": summary + " (another process's agent applies it at its next heartbeat)",
                "security": AUTH,
                "parameters": [agent_id],
                "responses": {
                    "202": _json(_ref("Agent"), "applied (this server's agent) or recorded (requested)"),
                    **_agent_errors(401, 404, 409),
                },
            }
        }
    paths["/queue"] = {
        "get": {
            "operationId": "queue",
            "summary": "Pending executions in claim order, with effective priority and why each waits",
            "security": AUTH,
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["aging_rate", "total", "executions"],
                        "properties": {
                            "aging_rate": {"type": "number", "description": "priority points per minute"},
                            "total": {"type": "integer", "minimum": 0},
                            "executions": {"type": "array", "items": _ref("QueuedExecution")},
                        },
                    },
                    "the queue",
                ),
                **_errors(400, 401),
            },
        }
    }
    return paths


def document(version: str = "0+unknown") -> dict[str, Any]:
    """The OpenAPI document (a fresh dict: callers may change it)."""
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness and readiness: status, version, agent id and state, active executions",
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status", "version", "agent_id", "agent_state", "active_executions"],
                            "properties": {
                                "status": {"const": "ok"},
                                "version": {"type": "string"},
                                "agent_id": {"type": "string"},
                                "agent_state": {"type": "string"},
                                "active_executions": {"type": "integer", "minimum": 0},
                            },
                        },
                        "the agent is up",
                    ),
                    **_errors(),
                },
            }
        },
        "/init": {
            "post": {
                "operationId": "init",
                "summary": "Load the adapters with this agent's configuration; list actions and schemas",
                "security": AUTH,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["agent_id", "version", "store", "adapters"],
                            "properties": {
                                "agent_id": {"type": "string"},
                                "version": {"type": "string"},
                                "store": {"type": "object"},
                                "adapters": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                        "the inventory",
                    ),
                    **_errors(401),
                },
            }
        },
        "/validate": {
            "post": {
                "operationId": "validate",
                "summary": "Validate a runbook; every problem with its line, column and field",
                "security": AUTH,
                "requestBody": _body(
                    {"type": "object", "required": ["wpk_content"], "properties": {"wpk_content": CONTENT}}
                ),
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["valid", "errors", "warnings"],
                            "properties": {
                                "valid": {"type": "boolean"},
                                "errors": {"type": "array", "items": _ref("Diagnostic")},
                                "warnings": {"type": "array", "items": _ref("Diagnostic")},
                            },
                        },
                        "the verdict (an invalid runbook is a 200 with valid: false)",
                    ),
                    **_errors(400, 401, 408, 413),
                },
            }
        },
        "/execute": {
            "post": {
                "operationId": "execute",
                "summary": "Queue an execution (or a dry-run); an agent claims it by priority",
                "security": AUTH,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["wpk_content"],
                        "properties": {
                            "wpk_content": CONTENT,
                            "parameters": {"type": "object", "description": "name -> value"},
                            "dry_run": {"type": "boolean", "default": False},
                            "priority": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": 100,
                                "description": "overrides the runbook's spec.priority",
                            },
                            "not_before": {
                                "type": ["string", "number"],
                                "description": "no agent claims it before this time: ISO 8601 "
                                "(no zone: UTC) or seconds since the epoch",
                            },
                        },
                    }
                ),
                "responses": {
                    "202": {**_json(_ref("Accepted"), "queued as pending"), "links": _links()},
                    **_errors(400, 401, 408, 413, 422),
                },
            }
        },
        "/execute/{execution_id}": {
            "get": {
                "operationId": "getExecution",
                "summary": "The execution record (with the plan, for a dry-run)",
                "security": AUTH,
                "parameters": [_id_param()],
                "responses": {"200": _json(_ref("Execution"), "the record"), **_errors(401, 404)},
            }
        },
        "/cancel/{execution_id}": {
            "post": {
                "operationId": "cancel",
                "summary": "Cancel: a pending execution at once; a running one stops its steps, then "
                "its rollback policy applies",
                "security": AUTH,
                "parameters": [_id_param()],
                "responses": {
                    "202": _json(_ref("Accepted"), "cancelled (status cancelled) or asked to stop (running)"),
                    **_errors(401, 404, 409),
                },
            }
        },
        "/rollback/{execution_id}": {
            "post": {
                "operationId": "rollback",
                "summary": "Roll back a completed, failed or cancelled execution; repeating it is harmless",
                "security": AUTH,
                "parameters": [_id_param()],
                "responses": {
                    "200": _json(_ref("Accepted"), "already rolling back or rolled back: nothing done"),
                    "202": _json(_ref("Accepted"), "rollback started (status rolling_back)"),
                    **_errors(401, 404, 409, 422),
                },
            }
        },
        "/logs/{execution_id}": {
            "get": {
                "operationId": "logs",
                "summary": "Log lines from an offset; follow=true streams NDJSON until the execution ends",
                "security": AUTH,
                "parameters": [
                    _id_param(),
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 1000000000},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                    },
                    {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
                ],
                "responses": {
                    "200": {
                        "description": "the lines (JSON); with follow=true, one LogLine per NDJSON line",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["execution_id", "lines", "next_offset"],
                                    "properties": {
                                        "execution_id": {"type": "string"},
                                        "lines": {"type": "array", "items": _ref("LogLine")},
                                        "next_offset": {"type": "integer", "minimum": 0},
                                    },
                                }
                            },
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, 401, 404),
                },
            }
        },
        "/executions": {
            "get": {
                "operationId": "listExecutions",
                "summary": "Executions, newest first, filtered and paginated",
                "security": AUTH,
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "description": "comma-separated statuses",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "workflow",
                        "in": "query",
                        "description": "workflow name or name-version",
                        "schema": {"type": "string", "maxLength": 200},
                    },
                    {
                        "name": "since",
                        "in": "query",
                        "description": "ISO 8601 time or epoch seconds",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "next_cursor of the previous page",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["executions", "next_cursor"],
                            "properties": {
                                "executions": {"type": "array", "items": _ref("ExecutionSummary")},
                                "next_cursor": NULLABLE_STRING,
                            },
                        },
                        "one page",
                    ),
                    **_errors(400, 401),
                },
            }
        },
        **_agent_paths(),
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus text exposition",
                "security": [],
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": AUTH,
                "responses": {"200": _json({"type": "object"}, "the OpenAPI document"), **_errors(401)},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "wpk sidecar API",
            "version": version,
            "description": "Validate, execute, watch, cancel and roll back runbook packages (DESIGN §7).",
        },
        "servers": [{"url": "http://127.0.0.1:4000"}],
        "security": AUTH,
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": ERROR,
                "Diagnostic": DIAGNOSTIC,
                "Status": STATUS,
                "Step": STEP,
                "Item": ITEM,
                "Execution": RECORD,
                "ExecutionSummary": SUMMARY,
                "LogLine": LOG_LINE,
                "Accepted": ACCEPTED,
                "Agent": AGENT,
                "QueuedExecution": QUEUED,
            },
        },
    }
