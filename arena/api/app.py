"""The aiohttp application serving the Kubernetes REST API over the arena's store.

One catch-all route parses Kubernetes paths (``/api/v1/namespaces/ns/pods/name/log``,
``/apis/apps/v1/deployments``...), so every resource gets every verb, subresource, dry run and ``Status`` error the
same way. Watches are chunked JSON streams fed by the store's watchers; ``exec`` is the Kubernetes websocket channel
protocol (``v5.channel.k8s.io``, ``v4.channel.k8s.io``).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from arena.api import discovery, tables
from arena.errors import ApiError, bad_request, gone, method_not_allowed, not_found_path
from arena.resources import BY_PATH, ResourceType
from arena.rest import PATCH_TYPES
from arena.selectors import match_labels, parse_fields, parse_labels
from arena.store import Change, Obj

if TYPE_CHECKING:
    from arena.cluster import Cluster

log = logging.getLogger(__name__)
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(), status=status, content_type="application/json"
    )


_ENCODED: dict[int, tuple[Obj, bytes]] = {}


def encode_obj(obj: Obj) -> bytes:
    """JSON of a stored object, cached: stored objects are immutable, so identity identifies the content."""
    hit = _ENCODED.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    data = json.dumps(obj, separators=(",", ":")).encode()
    if len(_ENCODED) > 50_000:
        _ENCODED.clear()
    _ENCODED[id(obj)] = (obj, data)
    return data


def _err(e: ApiError) -> web.Response:
    return _json(e.status(), e.code)


def _dry(q: Any) -> bool:
    return "All" in q.getall("dryRun", [])


@dataclass(frozen=True)
class LoggedRequest:
    """One request that was not a read (the request log tells tests what reached the API server)."""

    method: str
    path: str
    dry_run: bool
    user_agent: str

    @property
    def is_write(self) -> bool:
        """It could change the cluster: not a dry run, and not an exec's websocket upgrade (a GET)."""
        return not self.dry_run


class Target:
    def __init__(self, rt: ResourceType, namespace: str | None, name: str | None, sub: str | None) -> None:
        self.rt, self.namespace, self.name, self.sub = rt, namespace, name, sub


def parse_path(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        rt = BY_PATH.get((group, version, rest[2]))
        if rt is not None and rt.namespaced:
            ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    rt = BY_PATH.get((group, version, rest[0]))
    if rt is None:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rt.subresources:
        return None
    return Target(rt, ns, name, sub)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server understood it: what it acted on, whether as a dry run, and the status it answered."""

    method: str
    raw_path: str
    query: tuple[tuple[str, str], ...]
    kind: str | None
    namespace: str | None
    name: str | None
    sub: str | None
    dry_run: bool
    status: int


REQUEST_LOG_SIZE = 20_000


class ApiApp:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.rest = cluster.rest
        self.store = cluster.store
        self.closing = asyncio.Event()
        self.request_log: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_SIZE)
        """The last requests served (the audit log of the emulated API server), oldest first."""
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.requests: deque[LoggedRequest] = deque(maxlen=20_000)
        """Every POST, PUT, PATCH, DELETE and exec received, oldest first (the last 20,000)."""
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        status = 500
        if request.method not in ("GET", "HEAD", "OPTIONS") or request.path.endswith("/exec"):
            agent = request.headers.get("User-Agent", "")
            self.requests.append(LoggedRequest(request.method, request.path, _dry(request.query), agent))
        try:
            response = await self._dispatch(request)
            status = response.status
            return response
        except ApiError as e:
            status = e.code
            return _err(e)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # never leak a traceback as a bare 500
            log.exception("internal error serving %s %s", request.method, request.path)
            return _err(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))
        finally:
            self._log_request(request, status)

    def _log_request(self, request: web.Request, status: int) -> None:
        try:
            target = parse_path(request.path.rstrip("/") or "/")
        except Exception:
            target = None
        self.request_log.append(
            RequestRecord(
                method=request.method,
                raw_path=request.rel_url.raw_path,
                query=tuple(request.query.items()),
                kind=target.rt.kind if target else None,
                namespace=target.namespace if target else None,
                name=target.name if target else None,
                sub=target.sub if target else None,
                dry_run=_dry(request.query),
                status=status,
            )
        )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        method = request.method
        if method == "GET":
            simple = self._discovery(request, path)
            if simple is not None:
                return simple
        target = parse_path(path)
        if target is None:
            if path.startswith(("/api", "/apis")) and len([p for p in path.split("/") if p]) > 2:
                parts = [p for p in path.split("/") if p]
                raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
                _ = parts
            raise not_found_path()
        q = request.query
        rt, ns, name, sub = target.rt, target.namespace, target.name, target.sub
        if name is None:
            if method == "GET":
                if q.get("watch") in ("true", "1"):
                    return await self._watch(request, rt, ns)
                return self._list(request, rt, ns)
            if method == "POST":
                body = await self._body(request)
                obj = self.rest.create(rt, ns, body, _dry(q))
                return _json(obj, 201)
            if method == "DELETE":
                return await self._delete_collection(request, rt, ns)
            raise method_not_allowed()
        if sub is None:
            if method == "GET":
                if q.get("watch") in ("true", "1"):
                    return await self._watch(request, rt, ns, name)
                obj = self.rest.get(rt, ns, name)
                if tables.wants_table(request.headers.get("Accept", "")):
                    return _json(
                        tables.table(
                            rt.kind, [obj], obj["metadata"]["resourceVersion"], q.get("includeObject", "Metadata")
                        )
                    )
                return web.Response(body=encode_obj(obj), content_type="application/json")
            if method == "PUT":
                return _json(self.rest.update(rt, ns, name, await self._body(request), _dry(q)))
            if method == "PATCH":
                return _json(await self._patch(request, rt, ns, name, None))
            if method == "DELETE":
                return _json(await self._delete(request, rt, ns, name))
            raise method_not_allowed()
        if sub == "finalize" and method == "PUT":
            body = await self._body(request)
            cur = copy.deepcopy(self.rest.get(rt, ns, name))
            cur["spec"] = {"finalizers": list(((body or {}).get("spec") or {}).get("finalizers") or [])}
            return _json(self.rest.update(rt, ns, name, cur, _dry(q)))
        if sub == "status" or sub == "finalize":
            if method == "GET":
                return _json(self.rest.get(rt, ns, name))
            if method == "PUT":
                return _json(self.rest.update(rt, ns, name, await self._body(request), _dry(q), "status"))
            if method == "PATCH":
                return _json(await self._patch(request, rt, ns, name, "status"))
            raise method_not_allowed()
        if sub == "scale":
            return await self._scale(request, rt, ns, name)
        if sub == "log" and method == "GET":
            return await self._log(request, ns or "default", name)
        if sub == "exec":
            return await self._exec(request, ns or "default", name)
        if sub == "binding" and method == "POST":
            body = await self._body(request)
            node = (body.get("target") or {}).get("name")
            self.cluster.bind(ns or "default", name, str(node))
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)
        if sub == "eviction" and method == "POST":
            self.rest.delete(rt, ns, name)
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)
        raise method_not_allowed()

    # ------------------------------------------------------------------------------------------------------ discovery

    def _discovery(self, request: web.Request, path: str) -> web.Response | None:
        if path == "/version":
            return _json(discovery.VERSION)
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/api":
            return _json(discovery.api_versions(request.host))
        if path == "/apis":
            return _json(discovery.api_groups())
        if path == "/openapi/v3":
            return _json(discovery.openapi_index())
        if path.startswith("/openapi/v3/"):
            rest = path[len("/openapi/v3/") :].split("/")
            if rest[0] == "api" and len(rest) == 2:
                return _json(discovery.openapi_gv("", rest[1]))
            if rest[0] == "apis" and len(rest) == 3:
                return _json(discovery.openapi_gv(rest[1], rest[2]))
            raise not_found_path()
        parts = [p for p in path.split("/") if p]
        if parts == ["api", "v1"]:
            return _json(discovery.resource_list("", "v1"))
        if len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(parts[1])
            if doc is None:
                raise not_found_path()
            return _json(doc)
        if len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(parts[1], parts[2])
            if doc is None:
                raise not_found_path()
            return _json(doc)
        return None

    # ---------------------------------------------------------------------------------------------------------- verbs

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            raise bad_request("the body of the request was in an unknown format")
        ctype = request.content_type
        if ctype == "application/vnd.kubernetes.protobuf":
            from arena.api.protobuf import decode

            return decode(raw)
        if "yaml" in ctype:
            import yaml

            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise bad_request(f"error decoding YAML: {exc}") from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"error decoding request body: invalid JSON: {exc}") from exc

    def _list(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        q = request.query
        items = self.rest.list(rt, ns, q.get("labelSelector"), q.get("fieldSelector"))
        rv = str(self.store.resource_version)
        meta: Obj = {"resourceVersion": rv}
        # limit/continue: the continue token is the offset into the (name-sorted) result, as base64 JSON.
        start = 0
        if q.get("continue"):
            try:
                start = int(json.loads(base64.b64decode(q["continue"]))["offset"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: illegal base64 data") from None
        limit = int(q["limit"]) if q.get("limit", "").isdigit() and int(q["limit"]) > 0 else 0
        if start or limit:
            end = start + limit if limit else len(items)
            if end < len(items):
                meta["continue"] = base64.b64encode(json.dumps({"offset": end}).encode()).decode()
                meta["remainingItemCount"] = len(items) - end
            items = items[start:end]
        if tables.wants_table(request.headers.get("Accept", "")):
            table = tables.table(rt.kind, items, rv, q.get("includeObject", "Metadata"))
            table["metadata"] = meta
            return _json(table)
        head = json.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})
        body = head[:-1].encode() + b',"items":[' + b",".join(encode_obj(o) for o in items) + b"]}"
        return web.Response(body=body, content_type="application/json")

    async def _patch(self, request: web.Request, rt: ResourceType, ns: str | None, name: str, sub: str | None) -> Obj:
        ptype = PATCH_TYPES.get(request.content_type)
        if ptype == "apply" and sub is None:
            import yaml

            try:
                applied = yaml.safe_load(await request.read())
            except yaml.YAMLError as exc:
                raise bad_request(f"error decoding YAML: {exc}") from exc
            return self.rest.server_side_apply(rt, ns, name, applied, _dry(request.query))
        if ptype is None or ptype == "apply":
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json "
                f'(got "{request.content_type}")',
            )
        raw = await request.read()
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from exc
        return self.rest.patch(rt, ns, name, ptype, body, _dry(request.query), sub)

    async def _delete_opts(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        opts: dict[str, Any] = {}
        raw = await request.read()
        if raw:
            try:
                opts = json.loads(raw)
            except ValueError as exc:
                raise bad_request(f"error decoding DeleteOptions: {exc}") from exc
        out: dict[str, Any] = {
            "propagation": q.get("propagationPolicy") or opts.get("propagationPolicy"),
            "dry_run": _dry(q) or "All" in (opts.get("dryRun") or []),
            "preconditions": opts.get("preconditions"),
        }
        grace = q.get("gracePeriodSeconds") or opts.get("gracePeriodSeconds")
        try:
            out["grace"] = int(grace) if grace is not None else None
        except (TypeError, ValueError):
            raise bad_request(f"gracePeriodSeconds: invalid value {grace!r}: must be an integer") from None
        if opts.get("orphanDependents") is True or q.get("orphanDependents") == "true":
            out["propagation"] = "Orphan"
        return out

    async def _delete(self, request: web.Request, rt: ResourceType, ns: str | None, name: str) -> Obj:
        return self.rest.delete(rt, ns, name, **(await self._delete_opts(request)))

    async def _delete_collection(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        q = request.query
        opts = await self._delete_opts(request)
        items = self.rest.list(rt, ns, q.get("labelSelector"), q.get("fieldSelector"))
        out = [self.rest.delete(rt, o["metadata"].get("namespace"), o["metadata"]["name"], **opts) for o in items]
        rv = str(self.store.resource_version)
        return _json(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": rv}, "items": out}
        )

    # ---------------------------------------------------------------------------------------------------------- scale

    def _scale_obj(self, obj: Obj) -> Obj:
        sel = (obj.get("spec") or {}).get("selector")
        from arena.selectors import selector_string

        m = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": m["name"],
                "namespace": m.get("namespace"),
                "uid": m.get("uid"),
                "resourceVersion": m.get("resourceVersion"),
                "creationTimestamp": m.get("creationTimestamp"),
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": selector_string(sel),
            },
        }

    async def _scale(self, request: web.Request, rt: ResourceType, ns: str | None, name: str) -> web.Response:
        # The body is read before the object: nothing else may run between reading the object and writing it back.
        # A patch carries the object's resourceVersion only when it says so, and a controller's status update landing
        # while the body was read used to turn a plain `kubectl scale` into a 409 (the API server retries a patch
        # against the current object instead).
        if request.method == "PUT":
            put_body = await self._body(request)
        elif request.method == "PATCH":
            raw = await request.read()
        obj = self.rest.get(rt, ns, name)
        scale = self._scale_obj(obj)
        if request.method == "GET":
            return _json(scale)
        if request.method == "PUT":
            new_scale = put_body
        elif request.method == "PATCH":
            ptype = PATCH_TYPES.get(request.content_type, "merge")
            try:
                body = json.loads(raw or b"null")
            except ValueError as exc:
                raise bad_request(f"error decoding patch: {exc}") from exc
            from arena.patch import json_patch, merge_patch, strategic_merge

            if ptype == "json":
                new_scale = json_patch(scale, body)
            elif ptype == "strategic":
                new_scale = strategic_merge(scale, body)
            else:
                new_scale = merge_patch(scale, body)
        else:
            raise method_not_allowed()
        rv = (new_scale.get("metadata") or {}).get("resourceVersion")
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            from arena.errors import invalid

            raise invalid(
                rt,
                name,
                [
                    (
                        "spec.replicas",
                        "FieldValueInvalid",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                ],
            )
        new = copy.deepcopy(obj)
        new["spec"]["replicas"] = replicas
        if rv:
            new["metadata"]["resourceVersion"] = rv
        updated = self.rest.update(rt, ns, name, new, _dry(request.query))
        return _json(self._scale_obj(updated))

    # ---------------------------------------------------------------------------------------------------------- watch

    async def _watch(
        self, request: web.Request, rt: ResourceType, ns: str | None, name: str | None = None
    ) -> web.StreamResponse:
        q = request.query
        labels = parse_labels(q.get("labelSelector"))
        fields = parse_fields(q.get("fieldSelector"))
        rv = q.get("resourceVersion")
        since = int(rv) if rv and rv.isdigit() and rv != "0" else None
        if q.get("sendInitialEvents") == "true":
            since = None
        table_mode = tables.wants_table(request.headers.get("Accept", ""))
        include = q.get("includeObject", "Metadata")
        timeout = float(q.get("timeoutSeconds") or 1800)

        def matches(o: Obj | None) -> bool:
            if o is None:
                return False
            if name is not None and o["metadata"]["name"] != name:
                return False
            return match_labels(labels, o["metadata"].get("labels")) and fields(o)

        try:
            watcher, backlog = self.store.watch(rt.key, ns if rt.namespaced else None, since)
        except LookupError:
            raise gone(f"too old resource version: {since} ({self.store.resource_version})") from None
        initial: list[tuple[str, Obj]] = []
        send_initial = q.get("sendInitialEvents")
        if send_initial == "true" or (since is None and send_initial != "false"):
            initial = [("ADDED", o) for o in self.rest.list(rt, ns) if matches(o)]
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        first = [True]

        async def send(etype: str, obj: Obj) -> None:
            if table_mode:
                out = tables.table(rt.kind, [obj], obj["metadata"]["resourceVersion"], include, columns=first[0])
                first[0] = False
            else:
                out = obj
            await resp.write(json.dumps({"type": etype, "object": out}, separators=(",", ":")).encode() + b"\n")

        def translate(c: Change) -> tuple[str, Obj] | None:
            new_m, old_m = matches(c.obj), matches(c.old)
            if c.type == "DELETED":
                return ("DELETED", c.obj) if old_m else None
            if new_m and old_m:
                return ("MODIFIED", c.obj)
            if new_m:
                return ("ADDED", c.obj)
            if old_m:
                return ("DELETED", c.obj)
            return None

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            for etype, obj in initial:
                await send(etype, obj)
            if send_initial == "true":
                bookmark = {
                    "kind": rt.kind,
                    "apiVersion": rt.api_version,
                    "metadata": {
                        "resourceVersion": str(self.store.resource_version),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                await resp.write(json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n")
            for c in backlog:
                ev = translate(c)
                if ev:
                    await send(*ev)
            while not self.closing.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    change = await asyncio.wait_for(watcher.queue.get(), min(remaining, 5.0))
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    continue
                if change is None:
                    break
                ev = translate(change)
                if ev:
                    await send(*ev)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.store.unwatch(watcher)
        try:
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    # ---------------------------------------------------------------------------------------------------- log & exec

    async def _log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        q = request.query
        tail = int(q["tailLines"]) if q.get("tailLines", "").lstrip("-").isdigit() else None
        previous = q.get("previous") == "true"
        container = q.get("container")
        timestamps = q.get("timestamps") == "true"
        lines = self.cluster.logs(ns, name, container, previous)
        since = q.get("sinceSeconds")
        since_time = q.get("sinceTime")
        if (since and since.isdigit()) or since_time:
            import datetime as dt

            if since_time:
                cutoff = since_time.replace(".000000", "")
            else:
                cutoff_dt = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(since or 0))
                cutoff = cutoff_dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            lines = [(ts, text) for ts, text in lines if ts >= cutoff]
        if tail is not None and tail >= 0:
            lines = lines[-tail:] if tail else []
        render = [(f"{ts} {text}" if timestamps else text) for ts, text in lines]
        if q.get("follow") != "true":
            body = "".join(line + "\n" for line in render)
            limit = q.get("limitBytes")
            if limit and limit.isdigit():
                body = body.encode()[: int(limit)].decode(errors="ignore")
            return web.Response(text=body, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        try:
            for line in render:
                await resp.write((line + "\n").encode())
            seen = len(self.cluster.logs(ns, name, container, previous))
            while not self.closing.is_set():
                await asyncio.sleep(0.2)
                try:
                    cur = self.cluster.logs(ns, name, container, previous)
                except ApiError:
                    break
                if len(cur) < seen:
                    break
                for ts, text in cur[seen:]:
                    await resp.write(((f"{ts} {text}" if timestamps else text) + "\n").encode())
                seen = len(cur)
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    async def _exec(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        q = request.query
        command = q.getall("command", [])
        container = q.get("container")
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, autoping=True)
        if not ws.can_prepare(request).ok:
            raise bad_request("exec requires a websocket upgrade (Upgrade: websocket) with a channel.k8s.io protocol")
        # Validate before upgrading so kubectl shows a proper Status error.
        result = self.cluster.exec(ns, name, container, command)
        await ws.prepare(request)
        proto = ws.ws_protocol or "channel.k8s.io"
        try:
            if result.stdout and q.get("stdout", "true") != "false":
                await ws.send_bytes(b"\x01" + result.stdout.encode())
            if result.stderr and q.get("stderr", "true") != "false":
                await ws.send_bytes(b"\x02" + result.stderr.encode())
            if result.exit_code == 0:
                status: Obj = {"metadata": {}, "status": "Success"}
            else:
                status = {
                    "metadata": {},
                    "status": "Failure",
                    "message": f"command terminated with non-zero exit code: error executing command "
                    f"[{' '.join(command)}], exit code {result.exit_code}",
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(result.exit_code)}]},
                }
            if proto in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
                await ws.send_bytes(b"\x03" + json.dumps(status).encode())
            elif result.exit_code != 0:
                await ws.send_bytes(b"\x03" + status["message"].encode())
            if q.get("stdin") == "true":
                # Give an interactive client a moment to close its side; ignore whatever it sends.
                try:
                    msg = await asyncio.wait_for(ws.receive(), 0.05)
                    _ = msg.type == WSMsgType.CLOSE
                except TimeoutError:
                    pass
        except (ConnectionResetError, ConnectionError):
            pass
        await ws.close()
        return ws
