"""The bridge's pure rules: subject tokens, the scope filter, times, nesting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.bridge.handlers import MAX_DEPTH, depth
from services.bridge.normalise import AlertmanagerAlert, refusal
from stratus.contracts import TOKEN_MAX, Topology, token


@pytest.mark.parametrize("value", ["x" * 5000, "a.b.c", "*", ">", "ns with space", "\u0000\r\n", "\u0430bc", "🔥" * 99])
def test_any_value_becomes_one_bounded_ascii_token(value: str) -> None:
    out = token(value)
    assert 1 <= len(out) <= TOKEN_MAX
    assert out.isascii() and all(c.isalnum() or c in "-_" for c in out)
    assert len(Topology().alerts(value)) < 100


def test_long_values_stay_distinct_and_short_ones_unchanged() -> None:
    assert token("x" * 5000) != token("x" * 5001)
    assert token("shop-1") == "shop-1" and token("inc_42") == "inc_42"


@pytest.mark.parametrize(
    ("scope", "scopes", "why"),
    [
        ("shop", frozenset(), None),
        ("kube-system", frozenset(), "out_of_scope"),
        ("cluster", frozenset(), None),
        ("shop", frozenset({"shop"}), None),
        ("other", frozenset({"shop"}), "out_of_scope"),
        ("cluster", frozenset({"shop"}), "out_of_scope"),
        ("cluster", frozenset({"shop", "cluster"}), None),
        ("x" * 64, frozenset(), "invalid_namespace"),
        ("Shop", frozenset({"Shop"}), "invalid_namespace"),
        ("a.b", frozenset(), "invalid_namespace"),
        ("-a", frozenset(), "invalid_namespace"),
    ],
)
def test_scope_filter(scope: str, scopes: frozenset[str], why: str | None) -> None:
    assert refusal(scope, scopes) == why


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_times_without_a_utc_equivalent_are_validation_errors(ts: str) -> None:
    with pytest.raises(ValidationError, match="representable"):
        AlertmanagerAlert.model_validate({"status": "firing", "labels": {}, "startsAt": ts, "fingerprint": "f"})


def test_depth_is_measured_without_recursion() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    assert depth(deep) == MAX_DEPTH + 1
    assert depth({"alerts": [{"labels": {"a": "b"}}]}) == 4
