"""The data-plane catalogue's Kafka consumer-group offset reset: argument refusals, the argv the project renders, the
read of the committed offset the inverse is computed from, and the inverse itself."""

from __future__ import annotations

from typing import Any

import pytest

from stratus.actions import Exec
from stratus.dataplane import (
    DataPlaneError,
    check_args,
    check_forward,
    committed_offset,
    describe_catalogue,
    has_inverse,
    inverse_of,
    read_argv,
    render,
    stopped_deployments,
)

OP = "kafka.reset_group_offset"
ARGS: dict[str, Any] = {
    "group": "orders-validator",
    "topic": "orders-fulfillment",
    "partition": 0,
    "offset": 21,
    "consumers": ["orders-validator"],
}
BROKER = {"name": "kafka", "ports": [{"containerPort": 9092, "name": "plaintext"}]}
ARENA_DESCRIBE = (
    "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\norders-validator orders-fulfillment 0 20 57 37\n"
)
# The real tool's layout: aligned columns, consumer columns, several topics and partitions.
KAFKA_DESCRIBE = """
Consumer group 'orders-validator' has no active members.

GROUP            TOPIC              PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID
orders-validator orders-fulfillment 1          7               9               2    -            -     -
orders-validator orders-fulfillment 0          20              57              37   -            -     -
orders-validator orders-processed   0          3               3               0    -            -     -
"""


def test_rendered_argv_is_the_project_s() -> None:
    argv = render(OP, ARGS, {}, BROKER, lambda _ns, _name: None)
    assert argv == [
        "kafka-consumer-groups.sh",
        "--bootstrap-server",
        "localhost:9092",
        "--group",
        "orders-validator",
        "--topic",
        "orders-fulfillment:0",
        "--reset-offsets",
        "--to-offset",
        "21",
        "--execute",
    ]
    other_port = {"name": "kafka", "ports": [{"containerPort": 19092, "name": "plaintext"}]}
    assert "localhost:19092" in render(OP, ARGS, {}, other_port, lambda _ns, _name: None)
    assert "localhost:9092" in render(OP, ARGS, {}, {"name": "kafka"}, lambda _ns, _name: None)
    assert read_argv(OP, ARGS, BROKER) == [
        "kafka-consumer-groups.sh",
        "--bootstrap-server",
        "localhost:9092",
        "--describe",
        "--group",
        "orders-validator",
    ]
    assert stopped_deployments(OP, ARGS) == ["orders-validator"]
    grant = {"db": "a", "user": "u", "roles": [{"role": "r", "db": "a"}]}
    assert stopped_deployments("mongodb.grant_roles", grant) == []


@pytest.mark.parametrize("output", [ARENA_DESCRIBE, KAFKA_DESCRIBE])
def test_the_inverse_resets_the_offset_read_before(output: str) -> None:
    assert has_inverse(OP)
    assert inverse_of(OP, ARGS, output) == (OP, {**ARGS, "offset": 20, "replicas": None})
    assert committed_offset(KAFKA_DESCRIBE, "orders-validator", "orders-fulfillment", 1) == 7
    assert committed_offset(KAFKA_DESCRIBE, "orders-validator", "orders-processed", 0) == 3


@pytest.mark.parametrize(
    "output",
    [
        "",
        "Consumer group 'orders-validator' does not exist.\n",
        # a committed offset on another partition, topic or group is not this one's
        "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\norders-validator orders-fulfillment 1 20 57 37\n",
        "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\norders-validator orders-processed 0 20 57 37\n",
        "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\nsomeone-else orders-fulfillment 0 20 57 37\n",
        # no committed offset ('-'), or nonsense where it should be
        "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\norders-validator orders-fulfillment 0 - 57 -\n",
        "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\norders-validator orders-fulfillment 0 -3 57 60\n",
        "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\norders-validator orders-fulfillment 0 "
        + "\uff12\uff10 57 37\n",
        "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\norders-validator orders-fulfillment 0 "
        + "9" * 30
        + " 57 37\n",
        # a row without the header is not trusted
        "orders-validator orders-fulfillment 0 20 57 37\n",
    ],
)
def test_no_recorded_offset_no_inverse(output: str) -> None:
    with pytest.raises(DataPlaneError, match="no committed offset"):
        inverse_of(OP, ARGS, output)


def test_an_inverse_that_needs_a_read_needs_it() -> None:
    with pytest.raises(DataPlaneError, match="computed from a read"):
        inverse_of(OP, ARGS)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"group": "orders validator"}, "consumer group"),
        ({"group": "a;rm -rf /"}, "consumer group"),
        ({"group": "x" * 250}, "consumer group"),
        ({"group": ""}, "consumer group"),
        ({"group": "ordérs"}, "consumer group"),
        ({"topic": ".."}, "'.' and '..'"),
        ({"topic": "orders-fulfillment:0"}, "topic"),
        ({"topic": "$(id)"}, "topic"),
        ({"topic": "--execute"}, None),  # letters, digits and '-' only: a legal name, it stays one argv element
        ({"partition": -1}, "greater than or equal"),
        ({"partition": 100_000}, "less than or equal"),
        ({"partition": "0"}, "valid integer"),
        ({"partition": True}, "valid integer"),
        ({"offset": -1}, "greater than or equal"),
        ({"offset": 2**63}, "less than or equal"),
        ({"offset": "21"}, "valid integer"),
        ({"offset": 21.5}, "valid integer"),
        ({"consumers": []}, "at least 1"),
        ({"consumers": ["Orders_Validator"]}, "DNS-1123"),
        ({"consumers": ["a", "a"]}, "twice"),
        ({"consumers": [f"c{i}" for i in range(9)]}, "at most 8"),
        ({"replicas": {"other": 1}}, "not one of the consumers"),
        ({"replicas": {"orders-validator": -1}}, "from 0 to 1000"),
        ({"replicas": {"orders-validator": 10_000}}, "from 0 to 1000"),
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_arguments_refused(change: dict[str, Any], reason: str | None) -> None:
    args = {**ARGS, **change}
    if reason is None:
        assert check_args(OP, args)["topic"] == change["topic"]
        assert render(OP, args, {}, BROKER, lambda _ns, _name: None)[6] == "--execute:0"
        return
    with pytest.raises(DataPlaneError, match=reason):
        check_args(OP, args)
    with pytest.raises(ValueError, match=reason):
        Exec(namespace="shop", name="kafka-0", operation=OP, args=args)


def test_only_an_undo_carries_replicas() -> None:
    check_forward(OP, ARGS)
    with pytest.raises(DataPlaneError, match="set only by an undo record"):
        check_forward(OP, {**ARGS, "replicas": {"orders-validator": 1}})
    # the undo record's form validates
    assert check_args(OP, {**ARGS, "replicas": {"orders-validator": 2}})["replicas"] == {"orders-validator": 2}


def test_the_catalogue_lists_the_agent_s_arguments() -> None:
    text = describe_catalogue()
    assert f"{OP}(group, topic, partition, offset, consumers)" in text
