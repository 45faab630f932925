"""The `scale`, `log` and `token` subresources.

`scale` reads and writes `spec.replicas` of a Deployment, StatefulSet or ReplicaSet as an
`autoscaling/v1` Scale (GET, PUT, and the three non-apply patches); `log` renders pod logs;
`token` (POST an `authentication.k8s.io/v1` TokenRequest to a ServiceAccount) mints a bearer
token that authenticates as that ServiceAccount.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import (
    STALE,
    bad_request,
    conflict,
    invalid,
    invalid_value,
    method_not_allowed,
    unsupported_media_type,
)
from .jsondata import clone
from .logs import LogQuery, PodLogs
from .rest import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    Request,
    Response,
    Route,
    apply_patch_document,
    bool_param,
    decode_body,
    dry_run_requested,
    field_manager,
    int_param,
)
from .selectors import selector_string
from .store import Store

if TYPE_CHECKING:
    from .rbac import Authenticator


def scale_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    scale_meta = {
        k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
    }
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 0))},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas", 0)),
            "selector": selector_string((obj.get("spec") or {}).get("selector")),
        },
    }


def handle_scale(store: Store, request: Request, route: Route) -> Response:
    assert route.name is not None
    rt = route.rt
    if request.method in ("GET", "HEAD"):
        return Response.json(200, scale_of(store.require(rt, route.namespace, route.name)))
    if request.method not in ("PUT", "PATCH"):
        raise method_not_allowed()
    dry_run = dry_run_requested(request)
    with store.transaction():
        live = store.require(rt, route.namespace, route.name)
        current = scale_of(live)
        if request.method == "PUT":
            scale = decode_body(request)
        else:
            media_type = request.media_type
            if media_type not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH):
                raise unsupported_media_type(media_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH])
            scale = apply_patch_document(media_type, current, decode_body(request))
        if (
            not isinstance(scale, dict)
            or scale.get("kind", "Scale") != "Scale"
            or scale.get("apiVersion", "autoscaling/v1") != "autoscaling/v1"
        ):
            raise bad_request("the object provided is unrecognized (must be of type Scale)")
        smeta = scale.get("metadata") or {}
        if smeta.get("name", route.name) != route.name:
            raise bad_request(
                f"the name of the object ({smeta.get('name')}) does not match the name on the URL "
                f"({route.name})"
            )
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise bad_request(
                "json: cannot unmarshal into Go struct field ScaleSpec.spec.replicas of type int32"
            )
        if replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                route.name,
                [invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")],
            )
        given_rv = smeta.get("resourceVersion")
        if given_rv and given_rv != live["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, route.name, STALE)
        body = clone(live)
        body["spec"]["replicas"] = replicas
        obj = store.update(
            rt,
            body,
            namespace=route.namespace,
            name=route.name,
            manager=field_manager(request),
            dry_run=dry_run,
            subresource="scale",
        )
    return Response.json(200, scale_of(obj))


def handle_log(store: Store, logs: PodLogs, request: Request, route: Route) -> Response:
    assert route.name is not None and route.namespace is not None
    pod = store.require(route.rt, route.namespace, route.name)
    since_time = request.param("sinceTime")
    parsed_since: datetime | None = None
    if since_time:
        try:
            parsed_since = datetime.fromisoformat(since_time.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"invalid sinceTime {since_time!r}") from None
    query = LogQuery(
        container=request.param("container"),
        tail_lines=int_param(request, "tailLines"),
        since_seconds=int_param(request, "sinceSeconds"),
        since_time=parsed_since,
        timestamps=bool_param(request, "timestamps"),
        limit_bytes=int_param(request, "limitBytes"),
        previous=bool_param(request, "previous"),
    )
    for name, value in (
        ("tailLines", query.tail_lines),
        ("sinceSeconds", query.since_seconds),
        ("limitBytes", query.limit_bytes),
    ):
        if value is not None and (value < 0 or (value == 0 and name != "tailLines")):
            raise invalid(
                "PodLogOptions", "", route.name, [invalid_value(name, value, "must be greater than 0")]
            )
    text = logs.read(route.namespace, pod, query)
    return Response(200, text.encode(), "text/plain")


def handle_token(store: Store, authenticator: Authenticator, request: Request, route: Route) -> Response:
    """`POST serviceaccounts/<name>/token`: a TokenRequest answered with a minted token (201)."""
    assert route.name is not None and route.namespace is not None
    body = decode_body(request) if request.body else {}
    if not isinstance(body, dict) or body.get("kind", "TokenRequest") != "TokenRequest":
        raise bad_request("the body of the request is not a TokenRequest object")
    spec = body.get("spec") or {}
    seconds = spec.get("expirationSeconds", 3600)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 600:
        raise invalid(
            "TokenRequest",
            "authentication.k8s.io",
            route.name,
            [
                invalid_value(
                    "spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"
                )
            ],
        )
    store.require(route.rt, route.namespace, route.name)
    token = "" if dry_run_requested(request) else authenticator.mint(route.namespace, route.name)
    expires = (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": route.name, "namespace": route.namespace},
        "spec": {
            "audiences": spec.get("audiences") or ["https://kubernetes.default.svc"],
            "expirationSeconds": seconds,
        },
        "status": {"token": token, "expirationTimestamp": expires},
    }
    return Response.json(201, answer)
