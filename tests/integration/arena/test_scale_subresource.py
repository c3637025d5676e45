"""A patch of the scale subresource applies to the object as it is when the patch arrives: an update landing while
its body is still on the wire (a controller's status write) does not turn it into a 409, as it does not on an API
server, which carries a resourceVersion precondition only when the patch itself names one."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlparse

from arena.server import ArenaServer

from .helpers import deployment


def test_a_scale_patch_whose_body_arrives_after_another_update_applies(arena: ArenaServer, arena_ns: str) -> None:
    arena.cluster.create(deployment("web", replicas=2) | {"metadata": {"name": "web", "namespace": arena_ns}})
    url = urlparse(arena.url)
    body = json.dumps({"spec": {"replicas": 0}}).encode()
    head = (
        f"PATCH /apis/apps/v1/namespaces/{arena_ns}/deployments/web/scale HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\nAuthorization: Bearer arena\r\nContent-Type: application/merge-patch+json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(head)
        time.sleep(0.3)  # the server has the headers; the body is not there yet
        arena.cluster.patch("Deployment", arena_ns, "web", {"metadata": {"annotations": {"touched": "yes"}}}, "merge")
        conn.sendall(body)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status = reply.split(b"\r\n", 1)[0]
    assert b" 200 " in status, reply[:400]
    got = arena.cluster.get("Deployment", arena_ns, "web")
    assert got is not None and got["spec"]["replicas"] == 0 and got["metadata"]["annotations"]["touched"] == "yes"
