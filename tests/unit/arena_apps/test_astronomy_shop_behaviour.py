"""The Astronomy Shop's behaviour from state: its data stores (Valkey auth, PostgreSQL roles, Kafka groups and
offsets), env resolved at container start (Secret rotation goes stale, the last duplicate wins), internalTrafficPolicy
Local, a proxy whose upstream is itself, and dnsPolicy None."""

from __future__ import annotations

import base64
import copy
import functools

import pytest

from arena.behaviour.datastores import (
    KafkaState,
    PostgresState,
    ValkeyState,
    kafka_tool,
    parse_postgres,
    parse_redis_address,
    psql,
    valkey_cli,
)
from arena.behaviour.model import AppBehaviour
from arena.behaviour.requests import RequestModel
from arena.behaviour.world import Runtime

from .minicluster import MiniCluster

NS = "astronomy-shop"


@functools.cache
def _settled() -> MiniCluster:
    c = MiniCluster(AppBehaviour(Runtime(retry_interval=0)))
    c.deploy("astronomy-shop")
    c.settle(NS)
    return c


@pytest.fixture
def shop() -> MiniCluster:
    return copy.deepcopy(_settled())


def get(c: MiniCluster, path: str, method: str = "GET") -> tuple[int, str]:
    r = RequestModel(c.behaviour.rt).http(c, NS, "frontend-proxy", 8080, method, path)
    return r.status, r.error or ""


def pod_of(c: MiniCluster, name: str) -> dict:  # type: ignore[type-arg]
    return c.pods(NS, **{"opentelemetry.io/name": name})[0]


def env_of(c: MiniCluster, name: str) -> str:
    pod = pod_of(c, name)
    return c.behaviour.exec(c, pod, pod["spec"]["containers"][0], ["env"]).stdout


# ------------------------------------------------------------------------------------------------------ stores
def test_valkey_requirepass_is_enforced_and_can_be_cleared_with_it() -> None:
    v = ValkeyState()
    assert valkey_cli(v, ["valkey-cli", "PING"])[0] == "PONG\n"
    assert valkey_cli(v, ["valkey-cli", "CONFIG", "SET", "requirepass", "s3cret"])[2] == 0
    _out, err, code = valkey_cli(v, ["valkey-cli", "PING"])
    assert code == 1 and "NOAUTH Authentication required" in err
    assert v.auth_error(None) and v.auth_error("wrong") and v.auth_error("s3cret") is None
    assert "WRONGPASS" in valkey_cli(v, ["valkey-cli", "-a", "nope", "CONFIG", "SET", "requirepass", ""])[1]
    assert v.requirepass == "s3cret"
    assert valkey_cli(v, ["valkey-cli", "-a", "s3cret", "CONFIG", "SET", "requirepass", ""])[2] == 0
    assert valkey_cli(v, ["valkey-cli", "CONFIG", "GET", "requirepass"])[0] == "requirepass\n\n"
    assert parse_redis_address("valkey-cart:6379,ssl=false,password=x") == ("valkey-cart:6379", "x")


def test_postgres_checks_passwords_over_tcp_and_trusts_the_local_socket() -> None:
    pg = PostgresState()
    pg.run_sql("CREATE USER otelu WITH PASSWORD 'otelp'; CREATE DATABASE otel OWNER otelu;")
    pg.roles["root"] = "root"
    assert pg.login("otelu", "otelp", "otel") is None
    out, _err, code = psql(pg, ["psql", "-U", "root", "-c", "ALTER USER otelu WITH PASSWORD 'n3w'"])
    assert (out, code) == ("ALTER ROLE\n", 0)
    assert "password authentication failed" in (pg.login("otelu", "otelp", "otel") or "")
    assert psql(pg, ["psql", "postgres://otelu:n3w@localhost/otel", "-c", "SELECT 1"])[0].endswith("(1 row)\n")
    assert psql(pg, ["psql", "postgres://otelu:otelp@localhost/otel", "-c", "SELECT 1"])[2] == 2
    assert psql(pg, ["psql", "-U", "root", "-c", "DROP TABLE x"])[2] == 1  # not an operation it knows
    assert parse_postgres("Host=postgresql;Username=otelu;Password=p;Database=otel") == parse_postgres(
        "postgres://otelu:p@postgresql:5432/otel?sslmode=disable"
    )
    assert parse_postgres("not a connection string") is None


def test_kafka_refuses_to_reset_a_live_group_and_bounds_the_offset() -> None:
    k = KafkaState()
    base = ["--bootstrap-server", "localhost:9092"]
    assert kafka_tool(k, ["kafka-topics.sh", *base, "--create", "--topic", "t"], {})[2] == 0
    assert kafka_tool(k, ["kafka-topics.sh", *base, "--create", "--topic", "t"], {})[2] == 1
    kafka_tool(k, ["kafka-console-producer.sh", *base, "--topic", "t"], {}, stdin="a\nb\nc\n")
    assert k.topics["t"] == ["a", "b", "c"]
    reset = ["kafka-consumer-groups.sh", *base, "--group", "g", "--topic", "t:0", "--reset-offsets", "--to-offset"]
    _out, err, code = kafka_tool(k, [*reset, "2", "--execute"], {"g": 1})
    assert code == 1 and "inactive" in err and ("g", "t") not in k.groups
    assert kafka_tool(k, [*reset, "2"], {})[2] == 0 and ("g", "t") not in k.groups  # a dry run without --execute
    assert kafka_tool(k, [*reset, "99", "--execute"], {})[2] == 0 and k.groups[("g", "t")] == 3  # at most the end
    assert kafka_tool(k, ["kafka-topics.sh", "--list"], {})[2] == 1  # no bootstrap server


# ------------------------------------------------------------------------------------------------------ the shop
def test_the_shop_serves_its_locust_mix_through_the_proxy(shop: MiniCluster) -> None:
    for path, method in [
        ("/", "GET"),
        ("/api/products/OLJCESPC7Z", "GET"),
        ("/api/cart", "POST"),
        ("/api/checkout", "POST"),
    ]:
        assert get(shop, path, method)[0] == 200, (path, get(shop, path, method))


def test_the_last_duplicate_env_wins_and_a_proxy_pointed_at_itself_loops(shop: MiniCluster) -> None:
    pod = pod_of(shop, "frontend-proxy")
    pod["spec"]["containers"][0]["env"].append({"name": "FRONTEND_HOST", "value": "localhost"})
    shop.start(pod)
    env = env_of(shop, "frontend-proxy")
    assert "FRONTEND_HOST=localhost\n" in env and "FRONTEND_HOST=frontend" not in env
    status, error = get(shop, "/")
    assert status == 500 and "upstream request timeout" in error


def test_a_rotated_secret_reaches_a_process_only_when_its_container_restarts(shop: MiniCluster) -> None:
    def secret(password: str) -> None:
        url = f"postgres://otelu:{password}@postgresql/otel?sslmode=disable"
        shop.put(
            {
                "kind": "Secret",
                "metadata": {"name": "db", "namespace": NS},
                "data": {"url": base64.b64encode(url.encode()).decode()},
            }
        )

    secret("otelp")
    pod = pod_of(shop, "product-catalog")
    pod["spec"]["containers"][0]["env"][4] = {
        "name": "DB_CONNECTION_STRING",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
    }
    shop.start(pod)
    assert get(shop, "/api/products")[0] == 200
    pg = pod_of(shop, "postgresql")
    ok = shop.behaviour.exec(
        shop, pg, pg["spec"]["containers"][0], ["psql", "-U", "root", "-c", "ALTER USER otelu WITH PASSWORD 'n3w'"]
    )
    assert ok.exit_code == 0, ok.stderr
    secret("n3w")
    status, error = get(shop, "/api/products")
    assert status == 500 and "28P01" in error and "otelp@" in env_of(shop, "product-catalog")
    shop.start(pod)  # the container restarts: the kubelet resolves the Secret again
    assert get(shop, "/api/products")[0] == 200 and "n3w@" in env_of(shop, "product-catalog")


def test_internal_traffic_policy_local_routes_only_to_the_callers_node(shop: MiniCluster) -> None:
    for pod in shop.pods(NS):
        pod["spec"]["nodeName"] = "node-1"
    pod_of(shop, "frontend")["spec"]["nodeName"] = "node-2"
    assert get(shop, "/api/recommendations")[0] == 200
    shop.get("Service", NS, "recommendation")["spec"]["internalTrafficPolicy"] = "Local"  # type: ignore[index]
    status, error = get(shop, "/api/recommendations")
    assert status == 500 and "DeadlineExceeded" in error
    assert get(shop, "/api/products")[0] == 200  # other Services keep routing cluster-wide
    pod_of(shop, "frontend")["spec"]["nodeName"] = "node-1"  # a caller with a local endpoint
    assert get(shop, "/api/recommendations")[0] == 200


def test_valkey_auth_makes_cart_fail_at_start(shop: MiniCluster) -> None:
    valkey = pod_of(shop, "valkey-cart")
    res = shop.behaviour.exec(
        shop, valkey, valkey["spec"]["containers"][0], ["valkey-cli", "CONFIG", "SET", "requirepass", "x"]
    )
    assert res.stdout == "OK\n"
    status, error = get(shop, "/api/cart")
    assert status == 500 and "NOAUTH" in error
    cart = pod_of(shop, "cart")
    shop.start(cart)
    assert shop.outcomes[(cart["metadata"]["name"], "cart")].result == "crash"
    assert any("NOAUTH" in line for line in shop.pod_logs(cart))
    shop.start(valkey)  # a new server process: requirepass was run-time configuration only
    shop.start(cart)
    assert get(shop, "/api/cart")[0] == 200


def test_dns_policy_none_breaks_every_call_of_that_pod_only(shop: MiniCluster) -> None:
    pod = pod_of(shop, "frontend")
    pod["spec"]["dnsPolicy"] = "None"
    pod["spec"]["dnsConfig"] = {"nameservers": ["8.8.8.8"]}
    status, error = get(shop, "/api/products/OLJCESPC7Z")
    assert status == 500 and "no such host" in error
    assert get(shop, "/images/x.png")[0] == 200  # the proxy's own calls still resolve


def test_an_http_probe_on_a_path_the_server_does_not_route_is_a_404(shop: MiniCluster) -> None:
    pod = pod_of(shop, "frontend")
    c = pod["spec"]["containers"][0]
    probe = shop.behaviour.probe
    healthz = probe(shop, pod, c, {"httpGet": {"path": "/healthz", "port": 8080}})
    assert healthz == "HTTP probe failed with statuscode: 404"
    assert probe(shop, pod, c, {"httpGet": {"path": "/", "port": 8080}}) is None
    assert probe(shop, pod, c, {"httpGet": {"path": "/api/products/OLJCESPC7Z", "port": 8080}}) is None
    assert get(shop, "/healthz")[0] == 404  # the root page is not a prefix of every path


def test_an_init_wait_loop_on_nslookup_runs_until_the_name_resolves(shop: MiniCluster) -> None:
    pod = pod_of(shop, "frontend")
    script = "until nslookup legacy-config.astronomy-shop.svc.cluster.local; do echo waiting; sleep 5; done"
    init = {"name": "wait", "image": "busybox:1.28", "command": ["sh", "-c", script]}
    pod["spec"]["initContainers"] = [init]
    b = shop.behaviour
    outcome = b.start(shop, pod, init)
    assert outcome.result == "running" and outcome.keeps_running
    assert "nslookup: can't resolve 'legacy-config.astronomy-shop.svc.cluster.local'" in outcome.logs
    assert b.alive(shop, pod, init) is None  # still waiting: the name has no Service

    shop.put({"kind": "Service", "metadata": {"name": "legacy-config", "namespace": NS}, "spec": {"ports": []}})
    done = b.alive(shop, pod, init)
    assert done is not None and done.result == "crash" and done.exit_code == 0  # the loop ends: the init completes
    assert not b.start(shop, pod, init).keeps_running
    plain = {"name": "p", "image": "busybox:1.28", "command": ["sh", "-c", "echo hi"]}
    assert not b.start(shop, pod, plain).keeps_running  # a script without a wait loop completes at once
