"""The detector's confirmation: how many bad probes, among how many, open an incident."""

from __future__ import annotations

import random

from services.detector.detection import Confirmation
from stratus.contracts import Severity

BAD, GOOD = Severity(mu=1.0), Severity(mu=0.0)


def probes_to_open(confirm: Confirmation, failing_share: float, seed: int, limit: int = 2000) -> int | None:
    """Probes until ``confirm`` opens on a scope where each probe fails with ``failing_share``; None: never."""
    rng = random.Random(seed)
    for n in range(1, limit + 1):
        if confirm.observe("s", BAD if rng.random() < failing_share else GOOD):
            return n
    return None


def test_one_blip_opens_nothing_and_a_persistent_failure_opens_at_the_second_probe() -> None:
    confirm = Confirmation(threshold=1.0, needed=2, window=10)
    assert not confirm.observe("s", BAD)
    assert [confirm.observe("s", GOOD) for _ in range(20)] == [False] * 20
    assert not confirm.observe("s", BAD) and confirm.observe("s", BAD)


def test_two_bad_probes_within_the_window_open_on_the_latest_bad_one() -> None:
    confirm = Confirmation(threshold=1.0, needed=2, window=10)
    assert not confirm.observe("s", BAD)
    assert not any(confirm.observe("s", GOOD) for _ in range(8))
    assert confirm.observe("s", BAD)  # the 10th probe: 2 of the last 10
    confirm.reset("s")
    assert not confirm.observe("s", BAD)
    assert not any(confirm.observe("s", GOOD) for _ in range(9))
    assert not confirm.observe("s", BAD)  # 11 probes apart: the first has left the window
    assert not confirm.observe("s", GOOD)  # a healthy latest probe never opens


def test_a_failure_hitting_one_request_in_ten_opens_in_tens_of_probes_not_hundreds() -> None:
    windowed = [probes_to_open(Confirmation(1.0, 2, 10), 0.1, seed) for seed in range(200)]
    streak = [probes_to_open(Confirmation(1.0, 2), 0.1, seed) for seed in range(200)]
    assert all(n is not None for n in windowed)
    median = sorted(n for n in windowed if n is not None)[len(windowed) // 2]
    median_streak = sorted(n or 10**6 for n in streak)[len(streak) // 2]
    assert median <= 30 < 80 <= median_streak


def test_scopes_are_counted_apart_and_healthy_scopes_keep_nothing() -> None:
    confirm = Confirmation(threshold=1.0, needed=2, window=10)
    assert not confirm.observe("a", BAD)
    assert not confirm.observe("b", BAD)
    for _ in range(100):
        confirm.observe("c", GOOD)
    assert set(confirm.recent) == {"a", "b"}
    assert confirm.observe("a", BAD)
    for _ in range(10):
        confirm.observe("b", GOOD)
    assert "b" not in confirm.recent  # the window emptied of bad probes: forgotten


def test_more_bad_probes_than_the_window_holds_means_probes_never_open() -> None:
    confirm = Confirmation(threshold=1.0, needed=1_000_000, window=10)  # alerts alone open incidents
    assert not any(confirm.observe("s", BAD) for _ in range(50)) and not confirm.recent
