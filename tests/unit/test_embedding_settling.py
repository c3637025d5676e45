"""The embedding around pod changes: a scope whose pods change is no evidence until the change has settled (a window
and the settling time after a pod is created or gone), and a scope whose pods were all replaced (a redeploy, a
recreated namespace) restarts its baseline and calibration."""

from __future__ import annotations

import sys
from pathlib import Path

from stratus.embedding.model import Encoder
from stratus.embedding.runtime import StateEmbedding
from stratus.embedding.telemetry import Telemetry
from stratus.embedding.text import HashingEmbedder

sys.path.insert(0, str(Path(__file__).parent))
from embedding_synth import telemetry
from test_embedding_runtime import Clock, FakeReader, encoder  # noqa: F401  (the fixture)


class Pods(FakeReader):
    """The synthetic system with a pod list: ``pods`` maps each pod's name to its creation time."""

    def __init__(self, pods: dict[str, float]) -> None:
        super().__init__()
        self.pods = dict(pods)

    async def read(self, scope: str, start: float, end: float) -> Telemetry:
        t = telemetry(start, end, seed=int(start * 10), **self.fault)  # type: ignore[arg-type]
        t.pods_created = sorted((at, name) for name, at in self.pods.items())
        return t


OLD = {"front-1": 0.0, "store-1": 0.0, "store-2": 0.0}


def _embedding(reader: Pods, clock: Clock, **kwargs: object) -> StateEmbedding:
    return StateEmbedding(
        reader,
        encoder_of(reader),
        window_s=6.0,
        stride_s=1.5,
        text=HashingEmbedder(),
        clock=clock,
        calibration=4,
        **kwargs,  # type: ignore[arg-type]
    )


_ENCODER: list[Encoder] = []


def encoder_of(_: object) -> Encoder:
    return _ENCODER[0]


async def _run(emb: StateEmbedding, clock: Clock, n: int, healthy: bool = True) -> list[object]:
    out = []
    for _ in range(n):
        clock.now += 1.5
        out.append(await emb.observe("ns", healthy=healthy))
    return out


async def _calibrated(encoder: Encoder) -> tuple[StateEmbedding, Pods, Clock]:  # noqa: F811
    _ENCODER[:] = [encoder]
    reader, clock = Pods(OLD), Clock()
    emb = _embedding(reader, clock)
    await _run(emb, clock, 20)
    st = emb.scopes["ns"]
    assert st.calibration is not None and st.calibration.ready and st.changed_at is None
    return emb, reader, clock


async def test_a_pod_gone_is_no_evidence_until_its_change_has_settled(encoder: Encoder) -> None:  # noqa: F811
    emb, reader, clock = await _calibrated(encoder)
    learnt = emb.scopes["ns"].baseline.windows
    del reader.pods["store-2"]  # a scale-down: the survivor takes its load
    reader.fault = {"delay": {"store": 0.4}}
    gone_at = clock.now + 1.5
    during = await _run(emb, clock, 8)  # 12 s: the window (6 s) and the settling time (one more window)
    assert all(a is not None and a.changing == ["store-2"] and not a.anomalous for a in during)  # type: ignore[attr-defined]
    assert emb.scopes["ns"].baseline.windows == learnt  # a settling scope teaches nothing
    assert clock.now - gone_at < 12.0
    # still over the threshold: the change's own shift, until a window and three settling times (24 s) have passed
    longer = await _run(emb, clock, 8)
    assert all(a.changing == ["store-2"] and not a.anomalous for a in longer)  # type: ignore[attr-defined]
    assert emb.scopes["ns"].baseline.windows == learnt
    after = await _run(emb, clock, 8)
    assert all(a.changing == [] for a in after)  # type: ignore[attr-defined]
    assert any(a.anomalous for a in after)  # type: ignore[attr-defined]  # a shift that outlives the change counts


async def test_a_change_whose_shift_ends_under_the_longest_settling_raises_nothing(encoder: Encoder) -> None:  # noqa: F811
    emb, reader, clock = await _calibrated(encoder)
    del reader.pods["store-2"]
    reader.fault = {"delay": {"store": 0.4}}  # the survivor's latency for 18 s: longer than a window and a settling
    shifted = await _run(emb, clock, 12)
    reader.fault = {}
    quiet = await _run(emb, clock, 12)
    assert not any(a.anomalous for a in shifted + quiet)  # type: ignore[attr-defined]
    assert quiet[-1].changing == []  # type: ignore[attr-defined]
    reader.fault = {"delay": {"store": 0.4}}  # a later shift, with no pod change, is evidence at once
    assert any(a.anomalous for a in await _run(emb, clock, 8))  # type: ignore[attr-defined]


async def test_a_new_pod_keeps_the_scope_changing_for_a_window_and_the_settling_time(encoder: Encoder) -> None:  # noqa: F811
    emb, reader, clock = await _calibrated(encoder)
    reader.pods["front-2"] = clock.now + 1.0  # a scale-up (or a replaced pod) created now
    states = [a.changing for a in await _run(emb, clock, 12)]  # type: ignore[attr-defined]
    # windows ending within 6 s (the window) + 6 s (settle) of the creation are no evidence; then evidence again
    assert states[:7] == [["front-2"]] * 7 and states[-3:] == [[], [], []]
    emb_short = _embedding(reader, clock, settle=0.0)
    reader.pods["front-3"] = clock.now + 1.0
    await _run(emb_short, clock, 1)
    assert emb_short.scopes["ns"].changes == {"front-3"}


async def test_a_scope_whose_pods_were_all_replaced_restarts_its_baseline_and_calibration(encoder: Encoder) -> None:  # noqa: F811
    emb, reader, clock = await _calibrated(encoder)
    before = emb.scopes["ns"]
    reader.pods = {"front-9": clock.now, "store-9": clock.now}  # the app redeployed: every pod new
    reader.fault = {"delay": {"store": 0.4}}  # and its telemetry starts from somewhere else
    [a] = await _run(emb, clock, 1)
    st = emb.scopes["ns"]
    assert st is not before and st.baseline.windows == 0 and st.calibration is not None
    assert not st.calibration.scores and a is not None and not a.anomalous  # type: ignore[attr-defined]
    for a in await _run(emb, clock, 30):  # the new deployment is learnt as it is, never an incident
        assert a is None or not a.anomalous  # type: ignore[attr-defined]
    assert st.calibration.ready and st.baseline.windows > 0


async def test_a_partial_change_keeps_the_baseline(encoder: Encoder) -> None:  # noqa: F811
    emb, reader, clock = await _calibrated(encoder)
    before = emb.scopes["ns"]
    reader.pods = {"front-1": 0.0, "store-1": 0.0, "store-3": clock.now}  # one pod replaced
    await _run(emb, clock, 2)
    assert emb.scopes["ns"] is before and before.changes == {"store-2", "store-3"}


async def test_no_pod_list_is_no_change(encoder: Encoder) -> None:  # noqa: F811
    emb, reader, clock = await _calibrated(encoder)
    reader.pods = {}  # the pods API down: nothing known, the scope neither changes nor restarts
    before = emb.scopes["ns"]
    assert all(a.changing == [] for a in await _run(emb, clock, 3))  # type: ignore[attr-defined]
    assert emb.scopes["ns"] is before and before.pods == frozenset(OLD)


async def test_a_late_shift_of_a_change_is_part_of_it(encoder: Encoder) -> None:  # noqa: F811
    emb, reader, clock = await _calibrated(encoder)
    reader.pods["store-3"] = clock.now + 1.0  # a rolling restart's new pod
    quiet = await _run(emb, clock, 10)  # 15 s of healthy windows: the minimum settling passes
    assert quiet[-1].changing == []  # type: ignore[attr-defined]
    reader.fault = {"delay": {"store": 0.4}}  # the new pod warming up, 15-21 s after it started
    late = await _run(emb, clock, 4)
    reader.fault = {}
    after = await _run(emb, clock, 8)
    assert not any(a.anomalous for a in late + after)  # type: ignore[attr-defined]
    assert late[-1].changing == ["store-3"]  # type: ignore[attr-defined]
