"""The reasoners' tools, implemented over the cluster gateway (and the Jaeger query API for traces).

``GatewayTools`` is the read-only toolbox of both agents; ``TransactionTools`` adds ``execute`` for the mitigator:
each write goes through ``WriteGateway.write`` (confine, dry run, pre-image, journal, fence) and is then reported
with mu measured right after it: that is the transaction's hidden mu-path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import httpx
from pydantic import ValidationError

from stratus.actions import ACTION_TYPES, Action, parse_action
from stratus.confinement import Refusal
from stratus.errors import PermanentError
from stratus.gateway import KubeApiError, ReadGateway, WriteGateway, WriteResult
from stratus.kubectl import parse_command

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ACTION_CLASSES = tuple(ACTION_TYPES.values())


class GatewayTools:
    def __init__(self, gateway: ReadGateway, *, namespace: str, jaeger_url: str | None = None) -> None:
        self.gateway = gateway
        self.namespace = namespace
        self.jaeger_url = jaeger_url.rstrip("/") if jaeger_url else None

    async def list_objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return await self.gateway.list_objects(kind, namespace)

    async def get_object(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        return await self.gateway.get_object(kind, namespace, name)

    async def logs(
        self, namespace: str, pod: str, container: str | None = None, tail: int = 100, previous: bool = False
    ) -> str:
        try:
            text: str = await self.gateway._call(
                self.gateway.api.logs, namespace, pod, container=container, tail=tail, previous=previous
            )
        except KubeApiError as exc:
            return f"(no logs: {exc})"
        return text

    async def events(self, namespace: str) -> list[Obj]:
        return await self.gateway.list_objects("Event", namespace)

    async def traces(self, namespace: str, service: str | None = None, limit: int = 50) -> list[Obj]:
        if not self.jaeger_url:
            return []
        async with httpx.AsyncClient(timeout=10) as http:
            try:
                services = [service] if service else (await http.get(f"{self.jaeger_url}/api/services")).json()["data"]
                out: list[Obj] = []
                for s in services or []:
                    resp = await http.get(
                        f"{self.jaeger_url}/api/traces", params={"service": s, "limit": limit, "lookback": "5m"}
                    )
                    out.extend(resp.json().get("data") or [])
                return out
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("traces unavailable: %r", exc)
                return []

    async def kubectl(self, command: str) -> str:
        return await self.gateway.kubectl(command, namespace=self.namespace)


class TransactionTools(GatewayTools):
    """Reads plus writes under the transaction's lease, bounded by K, each reported with the mu after it."""

    def __init__(
        self,
        gateway: WriteGateway,
        *,
        namespace: str,
        jaeger_url: str | None = None,
        after_write: Callable[[WriteResult], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(gateway, namespace=namespace, jaeger_url=jaeger_url)
        self.write_gateway = gateway
        self.after_write = after_write
        self.results: list[WriteResult] = []
        self.needs_scope: str | None = None

    @property
    def writes_left(self) -> int:
        bound = self.write_gateway.max_writes
        return max(0, bound - self.write_gateway.writes) if bound is not None else 1_000_000

    async def execute(self, action: Any) -> str:
        if isinstance(action, dict):
            try:
                action = parse_action(action)
            except ValidationError as exc:
                raise PermanentError(f"invalid action {action.get('verb')}: {exc.errors()[0]['msg']}") from exc
        if not isinstance(action, ACTION_CLASSES):
            raise PermanentError(f"not an action: {action!r}")
        typed = cast(Action, action)
        if not typed.is_write:
            return await self.gateway.read(typed)
        try:
            result = await self.write_gateway.write(typed)
        except Refusal as exc:
            if exc.rule == "lease_scope" and self.write_gateway.policy.grants(typed.scope, typed.kind, typed.verb):
                self.needs_scope = typed.scope  # the coordinator widens the next attempt's lease (policy permitting)
            raise
        except KubeApiError as exc:
            raise PermanentError(str(exc)) from exc
        self.results.append(result)
        if result.executed and self.after_write is not None:
            await self.after_write(result)
        if not result.ok:
            raise PermanentError(result.message)
        return result.message

    async def kubectl(self, command: str) -> str:
        """Writes in a command line go through ``execute`` (so they are counted and reported); reads as usual."""
        try:
            actions = parse_command(command, role="write", namespace=self.namespace, workdir=self.gateway.workdir)
        except Refusal as exc:
            return str(exc)
        out = []
        for action in actions:
            try:
                out.append(await self.execute(action))
            except (PermanentError, KubeApiError) as exc:
                out.append(str(exc))
        return "\n\n".join(out)
