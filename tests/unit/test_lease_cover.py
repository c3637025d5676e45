"""What a lease covers: its own scope; a cluster lease adds only the incident's namespace (the one its checkpoint
digested), never another namespace."""

from __future__ import annotations

from typing import Any, cast

import pytest

from stratus.actions import Cordon, Delete
from stratus.confinement import Refusal
from stratus.contracts import Lease, utcnow
from stratus.gateway import KubeApi, WriteGateway


async def _fence(scope: str, token: int) -> None:
    return None


def gateway(scope: str, incident_ns: str) -> WriteGateway:
    lease = Lease(scope=scope, holder="t", token=1, expires_at=utcnow())
    return WriteGateway(
        cast(KubeApi, cast(Any, object())), lease=lease, check_fence=_fence, default_namespace=incident_ns
    )


def test_a_namespace_lease_covers_its_namespace_only() -> None:
    gw = gateway("shop", "shop")
    assert gw.covered_scopes == {"shop"}
    gw._check_scope(Delete(kind="ConfigMap", namespace="shop", name="c"))
    for action in (Delete(kind="ConfigMap", namespace="victim", name="c"), Cordon(name="node-1")):
        with pytest.raises(Refusal) as info:
            gw._check_scope(action)
        assert info.value.rule == "lease_scope"


def test_a_cluster_lease_covers_cluster_objects_and_the_incident_namespace_only() -> None:
    gw = gateway("cluster", "shop")
    assert gw.covered_scopes == {"cluster", "shop"}
    gw._check_scope(Cordon(name="node-1"))
    gw._check_scope(Delete(kind="ConfigMap", namespace="shop", name="c"))
    for ns in ("victim", "kube-system"):
        with pytest.raises(Refusal):
            gw._check_scope(Delete(kind="ConfigMap", namespace=ns, name="c"))
