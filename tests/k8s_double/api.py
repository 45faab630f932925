"""The REST semantics of kube-apiserver for the served resources, independent of HTTP.

`Api.handle(Request) -> Response` routes a path the way the real server does
(`/apis/apps/v1/namespaces/default/deployments/web/scale`), maps method + shape to a verb
(list, create, get, replace, patch, delete, deletecollection, the `status`, `scale`, `log` and
`token` subresources, watch), authorizes it (RBAC, `rbac.py`) when it came from an authenticated
user, and answers JSON objects, lists or `Status` failures.
"""

from __future__ import annotations

import base64
import json
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from . import resources
from .apply import create_from_apply, server_side_apply
from .errors import (
    STALE,
    ApiError,
    bad_request,
    conflict,
    method_not_allowed,
    path_not_found,
    unsupported_media_type,
)
from .logs import PodLogs
from .patches import PatchError
from .rbac import Authenticator, Authorizer
from .rest import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_TYPES,
    PROPAGATION,
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
    strip_type,
)
from .selectors import parse_field_selector, parse_label_selector
from .store import Store, now_rfc3339
from .subresources import handle_log, handle_scale, handle_token
from .validation import check_type

__all__ = ["Api", "Request", "Response", "Route"]


class Api:
    def __init__(
        self,
        store: Store,
        logs: PodLogs,
        server_address: Callable[[], str],
        watch_stream: Callable[[Request, Route, Callable[[dict[str, Any]], bool]], Response] | None = None,
        *,
        authenticator: Authenticator | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.store = store
        self.logs = logs
        self._server_address = server_address
        self._watch_stream = watch_stream
        self.authenticator = authenticator
        self.authorizer = authorizer

    # -- entry point --------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            if self.authorizer is not None:
                self.authorizer.authorize_request(request)
            return self._dispatch(request)
        except ApiError as error:
            return Response.error(error)
        except Exception as exc:  # a bug in the double: say so loudly, as a 500 Status
            traceback.print_exc()
            return Response.error(ApiError(500, "InternalError", f"k8s double bug: {exc!r}", {}))

    def _dispatch(self, request: Request) -> Response:
        segments = [s for s in request.path.split("/") if s]
        if request.method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            raise method_not_allowed()
        if segments in (["healthz"], ["livez"], ["readyz"]):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if segments == ["version"]:
            return self._read_only(request, resources.VERSION_INFO)
        if not segments or segments[0] not in ("api", "apis"):
            raise path_not_found()
        if segments[0] == "api":
            if len(segments) == 1:
                return self._read_only(request, resources.api_versions(self._server_address()))
            group, version, rest = "", segments[1], segments[2:]
        else:
            if len(segments) == 1:
                return self._read_only(request, resources.api_group_list())
            if len(segments) == 2:
                doc = resources.api_group(segments[1])
                if doc is None:
                    raise path_not_found()
                return self._read_only(request, doc)
            group, version, rest = segments[1], segments[2], segments[3:]
        if not rest:
            listing = resources.api_resource_list(group, version)
            if listing is None:
                raise path_not_found()
            return self._read_only(request, listing)
        return self._resource(request, self._route(group, version, rest))

    @staticmethod
    def _read_only(request: Request, payload: Mapping[str, Any]) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed()
        return Response.json(200, payload)

    @staticmethod
    def _route(group: str, version: str, rest: list[str]) -> Route:
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = resources.by_path(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = resources.by_path(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise path_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and not (
            (sub == "status" and rt.has_status)
            or (sub == "scale" and rt.scalable)
            or (sub == "log" and rt.has_log)
            or (sub == "token" and rt.has_token)
        ):
            raise path_not_found()
        if rt.namespaced and namespace is None and name is not None:
            raise path_not_found()
        return Route(rt, namespace, name, sub)

    def _resource(self, request: Request, route: Route) -> Response:
        method = request.method
        if route.name is None:
            if method in ("GET", "HEAD"):
                if bool_param(request, "watch"):
                    return self._watch(request, route)
                return self._list(request, route)
            if method == "POST" and (route.namespace is not None or not route.rt.namespaced):
                return self._create(request, route)
            if method == "DELETE":
                return self._delete_collection(request, route)
            raise method_not_allowed()
        if route.subresource == "log":
            if method != "GET":
                raise method_not_allowed()
            return handle_log(self.store, self.logs, request, route)
        if route.subresource == "scale":
            return handle_scale(self.store, request, route)
        if route.subresource == "token":
            if method != "POST" or self.authenticator is None:
                raise method_not_allowed()
            return handle_token(self.store, self.authenticator, request, route)
        if method in ("GET", "HEAD"):
            obj = self.store.require(route.rt, route.namespace, route.name)
            return Response.json(200, obj)
        if method == "PUT":
            return self._replace(request, route)
        if method == "PATCH":
            return self._patch(request, route)
        if method == "DELETE" and route.subresource is None:
            return self._delete(request, route)
        raise method_not_allowed()

    def _status_success(self, route: Route, obj: Mapping[str, Any]) -> dict[str, Any]:
        details: dict[str, Any] = {
            "name": route.name,
            "kind": route.rt.plural,
            "uid": obj["metadata"].get("uid"),
        }
        if route.rt.group:
            details["group"] = route.rt.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    # -- collection verbs ---------------------------------------------------------------------

    def _select(self, request: Request, route: Route) -> list[dict[str, Any]]:
        items = self.store.list(route.rt, route.namespace)
        label_selector = request.param("labelSelector")
        if label_selector:
            matches = parse_label_selector(label_selector)
            items = [i for i in items if matches(i["metadata"].get("labels") or {})]
        field_selector = request.param("fieldSelector")
        if field_selector:
            fmatch = parse_field_selector(field_selector, route.rt.field_labels)
            items = [i for i in items if fmatch(i)]
        return items

    def _list(self, request: Request, route: Route) -> Response:
        with self.store.transaction():
            items = self._select(request, route)
            rv = str(self.store.resource_version)
        meta: dict[str, Any] = {"resourceVersion": rv}
        start = 0
        token = request.param("continue")
        if token:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent "
                    "list result. You can start a new list without the continue parameter.",
                    {},
                ) from None
        limit = int_param(request, "limit")
        page = items[start:]
        if limit is not None and limit > 0 and len(page) > limit:
            page = page[:limit]
            next_token = json.dumps({"start": start + limit, "rv": rv}).encode()
            meta["continue"] = base64.urlsafe_b64encode(next_token).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        body = {
            "kind": route.rt.list_kind,
            "apiVersion": route.rt.api_version,
            "metadata": meta,
            "items": [strip_type(i) for i in page],
        }
        return Response.json(200, body)

    def _watch(self, request: Request, route: Route) -> Response:
        if self._watch_stream is None:
            raise ApiError(
                405, "MethodNotAllowed", "watch is not supported by the k8s double: poll with get/list", {}
            )
        label_selector = request.param("labelSelector")
        field_selector = request.param("fieldSelector")
        labels = parse_label_selector(label_selector) if label_selector else None
        fsel = parse_field_selector(field_selector, route.rt.field_labels) if field_selector else None

        def matches(obj: dict[str, Any]) -> bool:
            if labels is not None and not labels(obj["metadata"].get("labels") or {}):
                return False
            return fsel is None or fsel(obj)

        return self._watch_stream(request, route, matches)

    def _create(self, request: Request, route: Route) -> Response:
        body = decode_body(request)
        dry_run = dry_run_requested(request)
        obj = self.store.create(
            route.rt, body, namespace=route.namespace, manager=field_manager(request), dry_run=dry_run
        )
        return Response.json(201, obj)

    def _delete_collection(self, request: Request, route: Route) -> Response:
        if "deletecollection" not in route.rt.verbs:
            raise method_not_allowed()
        options = self._delete_options(request)
        dry_run = dry_run_requested(request, options)
        deleted = []
        with self.store.transaction():
            for item in self._select(request, route):
                meta = item["metadata"]
                obj, _ = self.store.delete(
                    route.rt,
                    meta.get("namespace"),
                    meta["name"],
                    propagation=self._propagation(request, options),
                    dry_run=dry_run,
                )
                deleted.append(strip_type(obj))
        return Response.json(
            200,
            {
                "kind": route.rt.list_kind,
                "apiVersion": route.rt.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            },
        )

    # -- item verbs ---------------------------------------------------------------------------

    def _replace(self, request: Request, route: Route) -> Response:
        assert route.name is not None
        body = decode_body(request)
        obj = self.store.update(
            route.rt,
            body,
            namespace=route.namespace,
            name=route.name,
            manager=field_manager(request),
            dry_run=dry_run_requested(request),
            subresource=route.subresource or "",
        )
        return Response.json(200, obj)

    def _patch(self, request: Request, route: Route) -> Response:
        assert route.name is not None
        media_type = request.media_type
        if media_type not in PATCH_TYPES:
            raise unsupported_media_type(media_type, PATCH_TYPES)
        if request.param("force") is not None and media_type != APPLY_PATCH:
            raise bad_request("force flag is only allowed for apply patches")
        if media_type == APPLY_PATCH:
            if route.subresource is not None:
                raise unsupported_media_type(media_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH])
            return self._apply(request, route)
        patch = decode_body(request)
        dry_run = dry_run_requested(request)
        with self.store.transaction():
            live = self.store.require(route.rt, route.namespace, route.name)
            patched = apply_patch_document(media_type, live, patch)
            obj = self.store.update(
                route.rt,
                patched,
                namespace=route.namespace,
                name=route.name,
                manager=field_manager(request),
                dry_run=dry_run,
                subresource=route.subresource or "",
            )
        return Response.json(200, obj)

    def _apply(self, request: Request, route: Route) -> Response:
        assert route.name is not None
        manager = request.param("fieldManager")
        if not manager:
            raise bad_request("PATCH request with apply content type requires fieldManager")
        applied = decode_body(request, yaml_ok=True)
        if not isinstance(applied, dict):
            raise bad_request("the applied configuration must be an object")
        for key in ("apiVersion", "kind"):
            if not applied.get(key):
                raise bad_request(
                    f"error decoding YAML: Object '{'Kind' if key == 'kind' else key}' is missing"
                )
        check_type(route.rt, applied)
        meta = applied.setdefault("metadata", {})
        if meta.get("name", route.name) != route.name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({route.name})"
            )
        meta["name"] = route.name
        if "managedFields" in meta:
            raise bad_request("metadata.managedFields must be nil")
        force = bool_param(request, "force")
        dry_run = dry_run_requested(request)
        now = now_rfc3339()
        rt = route.rt
        with self.store.transaction():
            live = self.store.get(rt, route.namespace, route.name)
            if live is None:
                if self.authorizer is not None:
                    self.authorizer.authorize_create_by_apply(request, route.name)
                created = create_from_apply(applied, manager=manager, api_version=rt.api_version, now=now)
                managed = created["metadata"].pop("managedFields", [])
                obj = self.store.create(rt, created, namespace=route.namespace, manager=None, dry_run=True)
                obj["metadata"]["managedFields"] = managed
                if not dry_run:
                    obj = self.store.create_raw(rt, obj)
                return Response.json(201, obj)
            given_rv = meta.get("resourceVersion")
            if given_rv and given_rv != live["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, route.name, STALE)
            try:
                merged = server_side_apply(
                    live,
                    applied,
                    manager=manager,
                    force=force,
                    api_version=rt.api_version,
                    now=now,
                    plural=rt.plural,
                    group=rt.group,
                )
            except PatchError as exc:
                raise bad_request(str(exc)) from None
            obj = self.store.update(
                rt,
                merged,
                namespace=route.namespace,
                name=route.name,
                manager=None,
                dry_run=dry_run,
                managed=False,
            )
        return Response.json(200, obj)

    def _delete_options(self, request: Request) -> dict[str, Any]:
        if not request.body:
            return {}
        options = decode_body(request)
        if not isinstance(options, dict):
            raise bad_request("DeleteOptions must be an object")
        return options

    @staticmethod
    def _propagation(request: Request, options: Mapping[str, Any]) -> str | None:
        policy = request.param("propagationPolicy") or options.get("propagationPolicy")
        orphan = request.param("orphanDependents") or options.get("orphanDependents")
        if policy is None and orphan is not None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        if policy is not None and policy not in PROPAGATION:
            raise bad_request(
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                '"Foreground", "Background", "Orphan"'
            )
        return policy

    def _delete(self, request: Request, route: Route) -> Response:
        assert route.name is not None
        options = self._delete_options(request)
        dry_run = dry_run_requested(request, options)
        preconditions = (
            options.get("preconditions") if isinstance(options.get("preconditions"), dict) else None
        )
        obj, deleted_now = self.store.delete(
            route.rt,
            route.namespace,
            route.name,
            propagation=self._propagation(request, options),
            preconditions=preconditions,
            dry_run=dry_run,
        )
        if not deleted_now or route.rt.kind == "Pod":
            return Response.json(200, obj)
        return Response.json(200, self._status_success(route, obj))
