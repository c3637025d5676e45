"""The last-known-good memory on a real JetStream KV bucket: shared by stores, bounded history, compact values."""

from __future__ import annotations

import pytest

from stratus.bus import Bus
from stratus.lastgood import LastGood, LastGoodStore, bucket_name

pytestmark = pytest.mark.integration


def snap(scope: str, image: str, at: float) -> LastGood:
    objects = {
        "Deployment/ns/web": {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"image": image}},
        **{f"ConfigMap/ns/c{i}": {"kind": "ConfigMap", "data": {"k": "v" * 200}} for i in range(200)},
    }
    return LastGood(scope=scope, taken_at=at, objects=objects)


async def test_snapshots_persist_on_the_bus_and_the_latest_wins(bus: Bus, uid: str) -> None:
    bucket = bucket_name(f"T{uid}".upper())
    writer = LastGoodStore(bus.js, bucket, history=2, max_bytes=64_000)
    reader = LastGoodStore(bus.js, bucket, history=2)
    assert await reader.latest("shop") is None
    for i in range(4):
        assert await writer.put(snap("shop", f"web:{i}", float(i)))
    latest = await reader.latest("shop")
    assert latest is not None and latest.taken_at == 3.0
    assert latest.objects["Deployment/ns/web"]["spec"]["image"] == "web:3"
    kv = await writer.kv()
    history = await kv.history(LastGoodStore.key("shop"))
    assert len(history) == 2  # bounded per scope
    assert all(len(entry.value) < 64_000 for entry in history)  # compressed well under the raw size
    assert await reader.latest("other") is None


async def test_a_snapshot_over_the_bound_is_not_recorded(bus: Bus, uid: str) -> None:
    store = LastGoodStore(bus.js, bucket_name(f"T{uid}".upper()), max_bytes=1024)
    big = LastGood(scope="s", taken_at=0, objects={f"Secret/ns/s{i}": {"hash": f"sha256:{i:064d}"} for i in range(500)})
    assert not await store.put(big)
    assert await store.latest("s") is None
