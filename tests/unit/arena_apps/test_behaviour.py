from __future__ import annotations

import copy
import functools

import pytest

from arena.behaviour.chaos import ChaosSpec, ChaosTarget, chaos_configmap
from arena.behaviour.model import AppBehaviour
from arena.behaviour.requests import RequestModel
from arena.behaviour.world import Runtime, pod_key

from .minicluster import MiniCluster

HOTEL, SOCIAL = "test-hotel-reservation", "test-social-network"


@functools.cache
def _settled(app: str, namespace: str) -> MiniCluster:
    c = MiniCluster(AppBehaviour(Runtime(retry_interval=0)))
    c.deploy(app)
    c.settle(namespace)
    return c


@pytest.fixture
def hotel() -> MiniCluster:
    return copy.deepcopy(_settled("hotel-reservation", HOTEL))


@pytest.fixture
def social() -> MiniCluster:
    return copy.deepcopy(_settled("social-network", SOCIAL))


def requests(c: MiniCluster, ns: str, service: str, port: int, path: str, n: int = 20) -> list[int]:
    model = RequestModel(c.behaviour.rt)
    return [model.http(c, ns, service, port, "GET", path).status for _ in range(n)]


def all_ready(c: MiniCluster, ns: str) -> bool:
    return all(p["status"]["conditions"][0]["status"] == "True" for p in c.pods(ns))


def test_hotel_comes_up_and_serves(hotel: MiniCluster) -> None:
    assert all_ready(hotel, HOTEL), [p["metadata"]["name"] for p in hotel.pods(HOTEL) if not p["status"]["conditions"]]
    assert set(requests(hotel, HOTEL, "frontend", 5000, "/hotels?inDate=2015-04-09")) == {200}
    assert set(requests(hotel, HOTEL, "frontend", 5000, "/recommendations")) == {200}
    assert set(requests(hotel, HOTEL, "frontend", 5000, "/reservation")) == {200}


def test_social_comes_up_and_serves(social: MiniCluster) -> None:
    assert all_ready(social, SOCIAL)
    assert set(requests(social, SOCIAL, "nginx-thrift", 8080, "/wrk2-api/post/compose")) == {200}


def test_geo_image_app3_panics_no_reachable_servers(hotel: MiniCluster) -> None:
    geo = hotel.pods(HOTEL, **{"io.kompose.service": "geo"})[0]
    geo["spec"]["containers"][0]["image"] = "yinfangchen/geo:app3"
    hotel.start(geo)
    out = hotel.outcomes[(geo["metadata"]["name"], "hotel-reserv-geo")]
    assert out.result == "crash" and out.exit_code == 2
    assert any("Read database URL: mongodb-geo:27777" in line for line in out.logs)
    assert "panic: no reachable servers" in out.logs
    statuses = requests(hotel, HOTEL, "frontend", 5000, "/hotels")
    assert set(statuses) == {500}


def mongo_exec(c: MiniCluster, svc: str, *argv: str) -> tuple[str, str, int]:
    pod = c.pods(HOTEL, **{"io.kompose.service": svc})[0]
    r = c.behaviour.exec(c, pod, pod["spec"]["containers"][0], list(argv))
    return r.stdout, r.stderr, r.exit_code


def test_revoke_then_restart_geo_is_not_authorized_and_grant_fixes(hotel: MiniCluster) -> None:
    revoke = "db.revokeRolesFromUser('admin',[{role:'readWrite',db:'geo-db'}]);"
    _, err, code = mongo_exec(
        hotel,
        "mongodb-geo",
        "mongo",
        "admin",
        "-u",
        "admin",
        "-p",
        "admin",
        "--authenticationDatabase",
        "admin",
        "--eval",
        revoke,
    )
    assert code == 0, err
    geo = hotel.pods(HOTEL, **{"io.kompose.service": "geo"})[0]
    hotel.start(geo)
    out = hotel.outcomes[(geo["metadata"]["name"], "hotel-reserv-geo")]
    assert out.result == "crash" and out.exit_code == 1
    assert any("not authorized on geo-db to execute command" in line for line in out.logs)
    # the data survives a mongod restart: it lives on the volume
    mongo = hotel.pods(HOTEL, **{"io.kompose.service": "mongodb-geo"})[0]
    hotel.start(mongo)
    hotel.start(geo)
    assert hotel.outcomes[(geo["metadata"]["name"], "hotel-reserv-geo")].result == "crash"
    grant = "db.grantRolesToUser('admin',[{role:'readWrite',db:'geo-db'}]);"
    _, err, code = mongo_exec(
        hotel,
        "mongodb-geo",
        "sh",
        "-c",
        f'mongo admin -u admin -p admin --authenticationDatabase admin --eval "{grant}"',
    )
    assert code == 0, err
    hotel.start(geo)
    assert hotel.outcomes[(geo["metadata"]["name"], "hotel-reserv-geo")].result == "running"


def test_dropped_user_gives_sasl_failure_and_mongod_logs_user_not_found(hotel: MiniCluster) -> None:
    _, err, code = mongo_exec(
        hotel,
        "mongodb-rate",
        "mongo",
        "admin",
        "-u",
        "root",
        "-p",
        "root",
        "--authenticationDatabase",
        "admin",
        "--eval",
        "db.dropUser('admin')",
    )
    assert code == 0, err
    rate = hotel.pods(HOTEL, **{"io.kompose.service": "rate"})[0]
    hotel.start(rate)
    out = hotel.outcomes[(rate["metadata"]["name"], "hotel-reserv-rate")]
    assert out.result == "crash"
    assert "panic: server returned error on SASL authentication step: Authentication failed." in out.logs
    mongo = hotel.pods(HOTEL, **{"io.kompose.service": "mongodb-rate"})[0]
    assert any(
        "UserNotFound" in line for line in hotel.behaviour.periodic_logs(hotel, mongo, mongo["spec"]["containers"][0])
    )


def test_target_port_misconfig_refuses_and_callers_log_thrift_errors(social: MiniCluster) -> None:
    svc = social.get("Service", SOCIAL, "user-service")
    assert svc is not None
    svc["spec"]["ports"][0]["targetPort"] = 9999
    assert all_ready(social, SOCIAL)
    statuses = requests(social, SOCIAL, "nginx-thrift", 8080, "/wrk2-api/post/compose")
    assert set(statuses) == {500}
    compose = social.pods(SOCIAL, app="compose-post-service")[0]
    lines = list(social.behaviour.periodic_logs(social, compose, compose["spec"]["containers"][0]))
    assert any("TSocket::open() connect() <Host: user-service Port: 9090>: Connection refused" in x for x in lines)


def test_mongodb_requiring_tls_makes_url_shorten_loop(social: MiniCluster) -> None:
    mongo = social.pods(SOCIAL, app="url-shorten-mongodb")[0]
    c = mongo["spec"]["containers"][0]
    c["args"] = ["--tlsMode", "requireTLS", "--tlsCertificateKeyFile", "/etc/tls/tls.pem"]
    social.start(mongo)
    assert social.outcomes[(mongo["metadata"]["name"], c["name"])].result == "crash"  # no certificate mounted
    c["volumeMounts"] = [{"name": "tls", "mountPath": "/etc/tls"}]
    mongo["spec"]["volumes"] = [{"name": "tls", "secret": {"secretName": "mongodb-tls"}}]
    social.put(
        {
            "kind": "Secret",
            "metadata": {"name": "mongodb-tls", "namespace": SOCIAL},
            "data": {"tls.pem": "eA==", "ca.crt": "eA=="},
        }
    )
    social.start(mongo)
    assert social.outcomes[(mongo["metadata"]["name"], c["name"])].result == "running"
    url = social.pods(SOCIAL, app="url-shorten-service")[0]
    social.start(url)
    social.settle(SOCIAL, rounds=2)
    assert any("Failed to create mongodb index, try again" in x for x in social.pod_logs(url))
    assert url["status"]["conditions"][0]["status"] == "True"  # no probe: stays Running and Ready
    assert 500 in requests(social, SOCIAL, "nginx-thrift", 8080, "/wrk2-api/post/compose", 30)


def test_wrong_binary_registers_the_wrong_name(hotel: MiniCluster) -> None:
    profile = hotel.pods(HOTEL, **{"io.kompose.service": "profile"})[0]
    profile["spec"]["containers"][0]["command"] = ["geo"]
    hotel.start(profile)
    assert hotel.outcomes[(profile["metadata"]["name"], "hotel-reserv-profile")].result == "running"
    assert set(requests(hotel, HOTEL, "frontend", 5000, "/hotels")) == {500}


def test_unknown_binary_and_image(hotel: MiniCluster) -> None:
    pod = hotel.pods(HOTEL, **{"io.kompose.service": "user"})[0]
    pod["spec"]["containers"][0]["command"] = ["nope"]
    hotel.start(pod)
    out = hotel.outcomes[(pod["metadata"]["name"], "hotel-reserv-user")]
    assert out.result == "start_error" and "executable file not found" in out.message
    pod["spec"]["containers"][0]["image"] = "yinfangchen/hotelreservation:nope"
    hotel.start(pod)
    assert hotel.outcomes[(pod["metadata"]["name"], "hotel-reserv-user")].result == "pull_error"


def test_network_policy_denying_ingress_times_out(hotel: MiniCluster) -> None:
    hotel.put(
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": HOTEL},
            "spec": {
                "podSelector": {"matchLabels": {"io.kompose.service": "mongodb-user"}},
                "policyTypes": ["Ingress"],
                "ingress": [],
            },
        }
    )
    user = hotel.pods(HOTEL, **{"io.kompose.service": "user"})[0]
    hotel.start(user)
    assert hotel.outcomes[(user["metadata"]["name"], "hotel-reserv-user")].result == "crash"


def test_chaos_network_delay_and_pod_failure(hotel: MiniCluster) -> None:
    user = hotel.pods(HOTEL, **{"io.kompose.service": "user"})[0]
    target = [ChaosTarget(namespace=HOTEL, name=user["metadata"]["name"])]
    hotel.put(chaos_configmap("delay", ChaosSpec(action="network-delay", targets=target, latency_ms=10_000)))
    model = RequestModel(hotel.behaviour.rt)
    r = model.http(hotel, HOTEL, "frontend", 5000, "POST", "/reservation")
    assert r.status == 200 and r.latency_ms >= 10_000
    assert model.http(hotel, HOTEL, "frontend", 5000, "GET", "/hotels").latency_ms < 100
    hotel.delete("ConfigMap", "chaos-mesh", "delay")
    hotel.put(chaos_configmap("fail", ChaosSpec(action="pod-failure", targets=target)))
    c = user["spec"]["containers"][0]
    assert hotel.behaviour.alive(hotel, user, c) is not None
    assert hotel.behaviour.ready(hotel, user, c) is False
    assert model.http(hotel, HOTEL, "frontend", 5000, "GET", "/user").status == 500


def test_containers_of_a_pod_share_ports_the_later_bind_fails(hotel: MiniCluster) -> None:
    pod = hotel.pods(HOTEL, **{"io.kompose.service": "frontend"})[0]
    sidecar = {"name": "sidecar", "image": "busybox:latest", "command": ["nc", "-lk", "-p", "5000"]}
    pod["spec"]["containers"].append(sidecar)
    hotel.start(pod)
    name = pod["metadata"]["name"]
    assert hotel.outcomes[(name, "hotel-reserv-frontend")].result == "running"
    out = hotel.outcomes[(name, "sidecar")]
    assert out.result == "crash" and out.logs == ["nc: bind: Address in use"]
    sidecar["command"] = ["nc", "-lk", "-p", "5001"]
    hotel.start(pod)
    assert hotel.outcomes[(name, "sidecar")].result == "running"


def test_memory_limit_below_the_program_oom_kills_it(hotel: MiniCluster) -> None:
    pod = hotel.pods(HOTEL, **{"io.kompose.service": "mongodb-rate"})[0]
    pod["spec"]["containers"][0]["resources"] = {"limits": {"memory": "10Mi"}}
    hotel.start(pod)
    out = hotel.outcomes[(pod["metadata"]["name"], "hotel-reserv-rate-mongo")]
    assert out.result == "crash" and out.exit_code == 137 and "oom" in out.message.lower()


def test_probe_answers_from_state(hotel: MiniCluster) -> None:
    pod = hotel.pods(HOTEL, **{"io.kompose.service": "frontend"})[0]
    c = pod["spec"]["containers"][0]
    b = hotel.behaviour
    assert b.probe(hotel, pod, c, {"tcpSocket": {"port": 5000}}) is None
    assert "connection refused" in str(b.probe(hotel, pod, c, {"httpGet": {"path": "/healthz", "port": 8080}}))
    assert b.probe(hotel, pod, c, {"httpGet": {"path": "/healthz", "port": 5000}}) == (
        "HTTP probe failed with statuscode: 404"
    )
    assert b.probe(hotel, pod, c, {"httpGet": {"path": "/hotels?x=1", "port": 5000}}) is None
    assert b.probe(hotel, pod, c, {"exec": {"command": ["true"]}}) is None
    assert b.probe(hotel, pod, c, {"exec": {"command": ["nope"]}})
    assert "within 1s" in str(b.probe(hotel, pod, c, {"grpc": {"port": 9999}}))


def test_sleep_infinity_keeps_an_init_container_running(social: MiniCluster) -> None:
    pod = social.pods(SOCIAL, app="user-service")[0]
    pod["spec"]["containers"][0] = {"name": "hang", "image": "busybox:1.36", "command": ["sleep", "infinity"]}
    social.start(pod)
    assert social.outcomes[(pod["metadata"]["name"], "hang")].keeps_running
    pod["spec"]["containers"][0]["command"] = ["sleep", "15"]
    social.start(pod)
    assert not social.outcomes[(pod["metadata"]["name"], "hang")].keeps_running


def test_rate_panics_when_its_cache_is_gone(hotel: MiniCluster) -> None:
    del hotel.objects[("Service", HOTEL, "memcached-rate")]
    assert 500 in requests(hotel, HOTEL, "frontend", 5000, "/hotels?inDate=2015-04-09", n=5)
    rate = hotel.pods(HOTEL, **{"io.kompose.service": "rate"})[0]
    b = hotel.behaviour
    out = b.alive(hotel, rate, rate["spec"]["containers"][0])
    assert out is not None and out.result == "crash" and out.exit_code == 2
    assert any("memmcached error" in line for line in out.logs)
    assert b.alive(hotel, rate, rate["spec"]["containers"][0]) is None, "one panic per instance"


def test_a_mongod_two_majors_newer_refuses_the_data_files(hotel: MiniCluster) -> None:
    pod = hotel.pods(HOTEL, **{"io.kompose.service": "mongodb-geo"})[0]
    name = pod["metadata"]["name"]
    c = pod["spec"]["containers"][0]
    c["image"] = "mongo:8.0.14-rc0"
    hotel.start(pod)
    out = hotel.outcomes[(name, c["name"])]
    assert out.result == "crash" and out.exit_code == 62 and "featureCompatibilityVersion" in out.logs[-1]
    c["image"] = "mongo:4.4.6"
    hotel.start(pod)
    assert hotel.outcomes[(name, c["name"])].result == "running"


def test_a_warming_up_service_fails_http_probes_until_warm(social: MiniCluster) -> None:
    pod = social.pods(SOCIAL, app="user-service")[0]
    c = {"name": "aux", "image": "python:3.9-slim", "command": ["python", "/scripts/server.py"]}
    pod["spec"]["containers"][0] = c
    social.start(pod)
    b = social.behaviour
    health = {"httpGet": {"path": "/health", "port": 8080}}
    assert b.probe(social, pod, c, health) == "HTTP probe failed with statuscode: 503"
    started = b.rt.started[(pod_key(pod), "aux")]
    b.rt.clock = lambda: started + 15 * b.rt.probe_scale + 0.01
    assert b.probe(social, pod, c, health) is None


def test_four_ephemeral_ports_leave_some_frontend_backend_unreachable(hotel: MiniCluster) -> None:
    assert set(requests(hotel, HOTEL, "frontend", 5000, "/hotels?inDate=2015-04-09", n=3)) == {200}
    for pod in hotel.pods(HOTEL, **{"io.kompose.service": "frontend"}):
        sysctl = {"name": "net.ipv4.ip_local_port_range", "value": "32000 32003"}
        pod["spec"]["securityContext"] = {"sysctls": [sysctl]}
        hotel.behaviour.rt.source_ports.pop(pod["metadata"]["uid"], None)
    codes = requests(hotel, HOTEL, "frontend", 5000, "/hotels?inDate=2015-04-09", n=3)
    codes += requests(hotel, HOTEL, "frontend", 5000, "/recommendations", n=3)
    codes += requests(hotel, HOTEL, "frontend", 5000, "/user?username=Cornell_1&password=1111111111", n=3)
    codes += requests(hotel, HOTEL, "frontend", 5000, "/reservation", n=3)
    assert 500 in codes and 200 in codes


def test_a_config_file_mounted_over_the_baked_one_drives_start_up(hotel: MiniCluster) -> None:
    import json

    from arena.apps.catalogue import load_catalogue

    config = dict(load_catalogue().images["yinfangchen/hotelreservation:latest"].config)
    config.pop("GeoMongoAddress")
    hotel.put(
        {
            "kind": "ConfigMap",
            "metadata": {"name": "geo-config", "namespace": HOTEL},
            "data": {"config.json": json.dumps(config)},
        }
    )
    pod = hotel.pods(HOTEL, **{"io.kompose.service": "geo"})[0]
    pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "geo-config"}}]
    c = pod["spec"]["containers"][0]
    path = "/go/src/github.com/harlow/go-micro-services/config.json"
    c["volumeMounts"] = [{"name": "cfg", "mountPath": path, "subPath": "config.json"}]
    hotel.start(pod)
    out = hotel.outcomes[(pod["metadata"]["name"], c["name"])]
    assert out.result == "crash" and any("no reachable servers" in line for line in out.logs)
    config["GeoMongoAddress"] = "mongodb-geo:27017"
    hotel.get("ConfigMap", HOTEL, "geo-config")["data"]["config.json"] = json.dumps(config)  # type: ignore[index]
    hotel.start(pod)
    assert hotel.outcomes[(pod["metadata"]["name"], c["name"])].result == "running"
