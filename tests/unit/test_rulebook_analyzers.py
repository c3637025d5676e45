"""Each analyzer on small, hand-built objects: the mechanism it sees, and the look-alikes it must leave alone."""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path
from typing import Any, get_args

import yaml

from arena.scenarios.schema import FaultType, SystemLevel
from stratus.reasoners.rulebook import analyzers as az
from stratus.reasoners.rulebook.snapshot import Snapshot

Obj = dict[str, Any]
NS = "shop"


def dep(
    name: str, *, replicas: int = 1, image: str = "shop/app:1", command: list[str] | None = None, **pod: Any
) -> Obj:
    container: Obj = {"name": name, "image": image, "ports": [{"containerPort": 8080}]}
    if command is not None:
        container["command"] = command
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container], **pod}},
        },
        "status": {"availableReplicas": replicas},
    }


def rs(d: Obj, revision: int, **container_changes: Any) -> Obj:
    tpl = copy.deepcopy(d["spec"]["template"])
    tpl["spec"]["containers"][0].update(container_changes)
    name = d["metadata"]["name"]
    return {
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name}-r{revision}",
            "namespace": NS,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"kind": "Deployment", "name": name, "uid": d["metadata"]["uid"], "controller": True}],
        },
        "spec": {"template": tpl},
    }


def pod(d: Obj, suffix: str = "x1", *, waiting: str | None = None, phase: str = "Running", restarts: int = 0) -> Obj:
    name = d["metadata"]["name"]
    state: Obj = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    ready = waiting is None and phase == "Running"
    return {
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{suffix}",
            "namespace": NS,
            "labels": dict(d["spec"]["template"]["metadata"]["labels"]),
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"{name}-r1"}],
        },
        "spec": copy.deepcopy(d["spec"]["template"]["spec"]),
        "status": {
            "phase": phase,
            "podIP": f"10.0.0.{len(name)}",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": name, "ready": ready, "restartCount": restarts, "state": state}]
            if phase != "Pending"
            else None,
        },
    }


def svc(name: str, port: int = 8080, target: int | str | None = 8080, protocol: str = "TCP") -> Obj:
    p: Obj = {"port": port, "protocol": protocol}
    if target is not None:
        p["targetPort"] = target
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"app": name}, "ports": [p]},
    }


def node(name: str, **labels: str) -> Obj:
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "spec": {},
    }


def snap(*objects: Obj, logs: dict[str, str] | None = None, events: list[Obj] | None = None) -> Snapshot:
    s = Snapshot(namespace=NS)
    for o in objects:
        s.objects.setdefault(o["kind"], []).append(o)
    s.logs = logs or {}
    s.events = events or []
    return s


# -- service_target_port ------------------------------------------------------------------------------------------


def test_target_port_matching_no_container_port_is_found_with_the_fix() -> None:
    d = dep("cart")
    caller = dep("web")
    s = snap(
        d,
        pod(d),
        svc("cart", target=9999),
        caller,
        pod(caller, restarts=1, waiting="CrashLoopBackOff"),
        logs={"web-x1/web": "TSocket::open() connect() <Host: cart Port: 8080>: Connection refused"},
    )
    [f] = az.service_target_port(s)
    assert (f.mechanism, f.component, f.root_cause.system_level, f.root_cause.fault_type) == (
        "service_target_port",
        "cart",
        "Virtualization",
        "Misconfiguration",
    )
    assert f.facts == {"service": "cart", "index": 0, "from": 9999, "to": 8080}
    assert f.confidence > 0.9 and "web-x1" in f.evidence[1]


def test_target_port_look_alikes_are_left_alone() -> None:
    d = dep("cart")
    named = copy.deepcopy(d)
    named["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = "http"
    assert az.service_target_port(snap(d, pod(d), svc("cart", target=None))) == []  # targetPort defaults to port
    assert az.service_target_port(snap(named, pod(named), svc("cart", target="http"))) == []
    assert az.service_target_port(snap(d, pod(d), svc("cart", port=53, target=5353, protocol="UDP"))) == []
    assert az.service_target_port(snap(svc("cart", target=9999))) == []  # no pods selected: nothing to compare


def test_target_port_name_matching_nothing_uses_the_single_declared_port() -> None:
    d = dep("cart")
    [f] = az.service_target_port(snap(d, pod(d), svc("cart", port=80, target="web")))
    assert f.facts["to"] == 8080


# -- scaled_to_zero ----------------------------------------------------------------------------------------------


def test_scaled_to_zero_behind_a_service() -> None:
    d = dep("users", replicas=0)
    [f] = az.scaled_to_zero(snap(d, svc("users")))
    assert (f.component, f.facts["replicas"], f.root_cause.fault_type) == ("users", 1, "Operation Error")


def test_scaled_to_zero_without_service_or_callers_is_intended() -> None:
    assert az.scaled_to_zero(snap(dep("batch", replicas=0))) == []


def test_scaled_to_zero_restores_the_last_applied_replicas() -> None:
    d = dep("users", replicas=0)
    d["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": '{"spec": {"replicas": 3}}'}
    [f] = az.scaled_to_zero(snap(d, svc("users")))
    assert f.facts["replicas"] == 3


# -- unschedulable_placement -------------------------------------------------------------------------------------


def test_node_selector_matching_no_node() -> None:
    d = dep("users", nodeSelector={"kubernetes.io/hostname": "ghost", "kubernetes.io/os": "linux"})
    p = pod(d, phase="Pending")
    ev = {
        "involvedObject": {"kind": "Pod", "name": p["metadata"]["name"]},
        "reason": "FailedScheduling",
        "message": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
    }
    s = snap(d, p, svc("users"), node("n1", **{"kubernetes.io/os": "linux"}), node("n2"), events=[ev])
    [f] = az.unschedulable_placement(s)
    assert f.facts["bad_keys"] == ["kubernetes.io/hostname"] and not f.facts["all_keys"]
    assert f.root_cause.fault_type == "Dependency Problem" and f.confidence >= 0.9
    assert any("FailedScheduling" in e for e in f.evidence)


def test_required_affinity_matching_no_node_and_satisfiable_selectors() -> None:
    term = {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    d = dep("db", affinity=affinity)
    [f] = az.unschedulable_placement(snap(d, pod(d, phase="Pending"), node("n1", disk="hdd")))
    assert f.facts["affinity"] and f.facts["bad_keys"] == []
    assert az.unschedulable_placement(snap(d, node("n1", disk="ssd"))) == []
    ok = dep("web", nodeSelector={"kubernetes.io/hostname": "n1"})
    assert az.unschedulable_placement(snap(ok, node("n1"))) == []


# -- unbound_claims ----------------------------------------------------------------------------------------------


def _pvc(name: str, sc: str) -> Obj:
    return {
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS, "uid": "new-uid"},
        "spec": {"storageClassName": sc},
        "status": {"phase": "Pending"},
    }


def test_released_volume_with_a_stale_claim_ref() -> None:
    d = dep("mongo", volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc"}}])
    pv = {
        "kind": "PersistentVolume",
        "metadata": {"name": "data-pv"},
        "spec": {"storageClassName": "data-sc", "claimRef": {"namespace": NS, "name": "data-pvc", "uid": "old-uid"}},
        "status": {"phase": "Released"},
    }
    sc = {"kind": "StorageClass", "metadata": {"name": "data-sc"}}
    [f] = az.unbound_claims(snap(d, pod(d, phase="Pending"), _pvc("data-pvc", "data-sc"), pv, sc, svc("mongo")))
    assert (f.mechanism, f.target, f.component) == ("stale_claim_ref", "PersistentVolume/data-pv", "mongo")
    assert f.facts["scope"] == "cluster" and "old-uid" in f.evidence[-1]


def test_missing_storage_class_and_bound_claims() -> None:
    pv = {"kind": "PersistentVolume", "metadata": {"name": "v"}, "spec": {"storageClassName": "gone"}, "status": {}}
    [f] = az.unbound_claims(snap(_pvc("c", "gone"), pv))
    assert (f.mechanism, f.facts["static"]) == ("missing_storage_class", True)
    bound = _pvc("c", "gone") | {"status": {"phase": "Bound"}}
    assert az.unbound_claims(snap(bound)) == []


# -- changed_template / sibling_program --------------------------------------------------------------------------


def test_changed_image_with_a_healthy_previous_revision() -> None:
    d = dep("geo", image="shop/geo:broken")
    s = snap(d, rs(d, 1, image="shop/geo:1"), rs(d, 2), pod(d, waiting="ImagePullBackOff"))
    [f] = az.changed_template(s)
    assert (f.facts["revision"], f.root_cause.fault_type) == (1, "Misconfiguration")
    assert f.facts["diff"] == [{"container": "geo", "field": "image", "old": "shop/geo:1", "new": "shop/geo:broken"}]


def test_changed_command_crashing_and_restart_only_changes_are_ignored() -> None:
    d = dep("geo", command=["bad"])
    s = snap(d, rs(d, 3, command=["geo"]), rs(d, 4), pod(d, waiting="CrashLoopBackOff", restarts=4))
    [f] = az.changed_template(s)
    assert f.facts["revision"] == 3 and f.facts["diff"][0]["field"] == "command"
    restarted = snap(d, rs(d, 3), rs(d, 4), pod(d, waiting="CrashLoopBackOff", restarts=4))
    assert az.changed_template(restarted) == []  # same containers in every revision: nothing to return to
    healthy = snap(d, rs(d, 3, command=["geo"]), rs(d, 4), pod(d))
    assert az.changed_template(healthy) == []


def test_bad_image_without_history_is_reported_without_a_revision() -> None:
    d = dep("geo", image="shop/geo:nope")
    [f] = az.changed_template(snap(d, pod(d, waiting="ErrImagePull")))
    assert f.mechanism == "bad_image" and "revision" not in f.facts


def test_workload_running_a_siblings_program() -> None:
    deps = [dep(n, image="shop/all:1", command=[n]) for n in ("web", "search", "geo", "rate")]
    wrong = dep("profile", image="shop/all:1", command=["geo"])
    [f] = az.sibling_program(snap(*deps, wrong))
    assert f.facts["command"] == ["profile"] and f.facts["old"] == ["geo"] and f.component == "profile"
    odd = dep("profile", image="shop/all:1", command=["profiler"])
    assert az.sibling_program(snap(*deps, odd)) == []  # not another sibling's program: no convention to apply
    assert az.sibling_program(snap(deps[0], deps[1], wrong)) == []  # too few siblings to call it a convention


# -- logs ----------------------------------------------------------------------------------------------------------


def test_connection_targets_from_common_stacks() -> None:
    text = "\n".join(
        [
            "TSocket::open() connect() <Host: text-service Port: 9090>: Connection refused",
            'transport: Error while dialing dial tcp 10.96.0.12:8083: connect: connection refused"',
            "No suitable servers found: [connection refused calling ismaster on 'url-mongodb:27017']",
            "Could not connect to Redis at cache:6379: Connection refused",
            "INF cmd/geo/db.go:37 > Read database URL: mongodb-geo:27777",
            "panic: no reachable servers",
        ]
    )
    hosts = [(t.host, t.port) for t in az.connection_targets(text)]
    assert hosts == [
        ("text-service", 9090),
        ("10.96.0.12", 8083),
        ("url-mongodb", 27017),
        ("cache", 6379),
        ("mongodb-geo", 27777),
    ]


def test_unreachable_upstream_port_not_exposed_and_no_endpoints() -> None:
    client, db = dep("geo"), dep("mongodb-geo", replicas=0)
    logs = {"geo-x1/geo#previous": "Read database URL: mongodb-geo:27777\npanic: no reachable servers"}
    s = snap(
        client, pod(client, waiting="CrashLoopBackOff", restarts=3), db, svc("mongodb-geo", 27017, 27017), logs=logs
    )
    [f] = az.unreachable_upstream(s)
    assert (f.mechanism, f.component, f.facts["port"]) == ("client_wrong_port", "geo", 27777)
    logs = {"geo-x1/geo#previous": "Read database URL: mongodb-geo:27017\npanic: no reachable servers"}
    s = snap(
        client, pod(client, waiting="CrashLoopBackOff", restarts=3), db, svc("mongodb-geo", 27017, 27017), logs=logs
    )
    [f] = az.unreachable_upstream(s)
    assert (f.mechanism, f.caused_by, f.confidence < 0.5) == ("upstream_unavailable", "mongodb-geo", True)


INIT = """// Runs once
db = db.getSiblingDB('admin');
db.createUser({user: 'admin', pwd: 'secret', roles: [{role: 'userAdminAnyDatabase', db: 'admin'}]});
db.grantRolesToUser('admin', [{role: 'readWrite', db: 'orders-db'}]);
"""


def _database(init: str = INIT) -> tuple[Obj, Obj, Obj]:
    d = dep(
        "orders-mongo",
        image="mongo:4.4",
        volumes=[{"name": "init", "configMap": {"name": "orders-init"}}],
    )
    c = d["spec"]["template"]["spec"]["containers"][0]
    c["volumeMounts"] = [{"name": "init", "mountPath": "/docker-entrypoint-initdb.d"}]
    c["env"] = [
        {"name": "MONGO_INITDB_ROOT_USERNAME", "value": "root"},
        {"name": "MONGO_INITDB_ROOT_PASSWORD", "value": "pw"},
    ]
    cm = {"kind": "ConfigMap", "metadata": {"name": "orders-init", "namespace": NS}, "data": {"init.js": init}}
    return d, cm, svc("orders-mongo", 27017, 27017)


def test_declared_users_from_init_scripts() -> None:
    d, cm, _ = _database()
    users = az.declared_users(snap(cm), pod(d))
    assert users == [
        {
            "user": "admin",
            "db": "admin",
            "pwd": "secret",
            "roles": [{"role": "userAdminAnyDatabase", "db": "admin"}, {"role": "readWrite", "db": "orders-db"}],
        }
    ]
    multi = 'use admin\ndb.createUser({\n  user: "app",\n  pwd: "x",\n  roles: [{role: "read", db: "a"}]\n})\n'
    d2, cm2, _ = _database(multi)
    assert az.declared_users(snap(cm2), pod(d2))[0]["roles"] == [{"role": "read", "db": "a"}]


def test_database_authorisation_failure_is_a_missing_grant() -> None:
    d, cm, s_db = _database()
    client = dep("orders")
    logs = {
        "orders-x1/orders#previous": "Read database URL: orders-mongo:27017\n"
        'FTL not authorized on orders-db to execute command { count: "orders" }'
    }
    s = snap(d, pod(d, "db1"), cm, s_db, client, pod(client, waiting="CrashLoopBackOff", restarts=2), logs=logs)
    [f] = az.database_auth(s)
    assert (f.component, f.root_cause.fault_type, f.target) == (
        "orders-mongo",
        "Authentication Issue",
        "Pod/orders-mongo-db1",
    )
    assert f.facts["repair"] == "grant" and f.facts["roles"] == [{"role": "readWrite", "db": "orders-db"}]
    assert f.facts["admin"] == {"user": "root", "pwd": "pw", "db": "admin"} and f.facts["clients"] == ["orders"]


def test_database_authentication_failure_with_user_not_found_is_a_missing_user() -> None:
    d, cm, s_db = _database()
    client = dep("orders")
    logs = {
        "orders-x1/orders#previous": "Read database URL: orders-mongo:27017\npanic: server returned error on SASL "
        "authentication step: Authentication failed.",
        "orders-mongo-db1/orders-mongo": '{"msg":"Authentication failed","attr":{"principalName":"admin",'
        '"error":"UserNotFound: Could not find user \\"admin\\" for db \\"admin\\""}}',
    }
    s = snap(d, pod(d, "db1"), cm, s_db, client, pod(client, waiting="CrashLoopBackOff", restarts=2), logs=logs)
    [f] = az.database_auth(s)
    assert f.facts["repair"] == "create" and f.facts["pwd"] == "secret" and len(f.facts["roles"]) == 2
    no_server_log = {k: v for k, v in logs.items() if "#previous" in k}
    s = snap(d, pod(d, "db1"), cm, s_db, client, pod(client, waiting="CrashLoopBackOff"), logs=no_server_log)
    assert az.database_auth(s) == []  # a wrong password is not a missing user: no repair guessed


def test_database_rejecting_plaintext_after_a_rollout() -> None:
    d, _, s_db = _database()
    d["spec"]["template"]["spec"]["containers"][0]["args"] = ["--tlsMode", "requireTLS"]
    client = dep("shortener")
    logs = {
        "orders-mongo-db1/orders-mongo": '{"error":{"codeName":"SSLHandshakeFailed"}}',
        "shortener-x1/shortener": "Failed to create mongodb index, try again (orders-mongo:27017)",
    }
    s = snap(d, rs(d, 1, args=None), rs(d, 2), pod(d, "db1"), s_db, client, pod(client), logs=logs)
    [f] = az.database_rejects_plaintext(s)
    assert f.facts["revision"] == 1 and f.facts["clients"] == ["shortener"] and f.component == "orders-mongo"


def test_crash_looping_is_the_weakest_finding() -> None:
    d = dep("worker")
    [f] = az.crash_looping(snap(d, pod(d, waiting="CrashLoopBackOff", restarts=7)))
    assert f.confidence < 0.5 and f.facts == {"kind": "Deployment", "name": "worker"}
    assert az.crash_looping(snap(d, pod(d))) == []


def test_analyze_orders_causes_before_symptoms() -> None:
    client, db = dep("geo"), dep("mongodb-geo", replicas=0)
    logs = {"geo-x1/geo#previous": "Read database URL: mongodb-geo:27017\npanic: no reachable servers"}
    s = snap(
        client, pod(client, waiting="CrashLoopBackOff", restarts=3), db, svc("mongodb-geo", 27017, 27017), logs=logs
    )
    mechanisms = [f.mechanism for f in az.analyze(s)]
    assert mechanisms[0] == "scaled_to_zero" and mechanisms[-1] == "upstream_unavailable"


def test_an_old_revision_is_not_blamed_for_a_failure_it_cannot_explain() -> None:
    """Rolled back earlier (a bad revision stays in the history); now the database refuses it: do not undo again."""
    d = dep("geo", image="shop/geo:1")
    logs = {"geo-x1/geo#previous": "FTL not authorized on geo-db to execute command { count: 1 }"}
    s = snap(d, rs(d, 4, image="shop/geo:bad"), rs(d, 5), pod(d, waiting="CrashLoopBackOff", restarts=3), logs=logs)
    [f] = az.changed_template(s)
    assert f.confidence < 0.5 and "unrelated" in f.evidence[-1]


def test_database_requiring_tls_without_history_drops_the_tls_options() -> None:
    from stratus.reasoners.rulebook.recipes import plan_for

    d, _, s_db = _database()
    args = ["--auth", "--tlsMode", "requireTLS", "--tlsCertificateKeyFile=/etc/tls/tls.pem", "--tlsCAFile", "/ca"]
    d["spec"]["template"]["spec"]["containers"][0]["args"] = args
    logs = {"orders-mongo-db1/orders-mongo": "The server is configured to only allow SSL connections"}
    [f] = az.database_rejects_plaintext(snap(d, pod(d, "db1"), s_db, logs=logs))
    assert f.facts["revision"] is None and f.confidence >= 0.5
    plan = plan_for(f, NS)
    assert plan is not None and plan.actions[0].verb == "patch"
    assert plan.actions[0].patch[1] == {  # type: ignore[union-attr]
        "op": "replace",
        "path": "/spec/template/spec/containers/0/args",
        "value": ["--auth"],
    }


# -- root causes ---------------------------------------------------------------------------------------------------

LEVELS = set(get_args(SystemLevel))  # the vocabulary of the arena's RCA oracle, not the product's own copy
FAULT_TYPES = set(get_args(FaultType))


def test_every_mechanism_has_a_root_cause_in_aiopslab_vocabulary() -> None:
    from stratus.reasoners.rulebook import batch, changes, relations

    produced = {
        m
        for mod in (az, relations, batch)
        for m in re.findall(r'mechanism(?:=|, target = )"(\w+)"', inspect.getsource(mod))
    }
    assert produced | set(changes.CHANGE_MECHANISMS) == set(az.ROOT_CAUSES)
    for mechanism, rc in az.ROOT_CAUSES.items():
        assert rc.system_level in LEVELS and rc.fault_type in FAULT_TYPES, mechanism


def test_root_cause_follows_from_the_mechanism() -> None:
    """Kubernetes objects are the Virtualization level, the program and its configuration the Application level;
    a value written wrong is a Misconfiguration, an operator removing what the app needs an Operation Error."""
    by_class = {
        ("Virtualization", "Misconfiguration"): {
            "service_target_port",
            "recent_change",
            "service_selector_mismatch",
            "service_selects_foreign_pods",
            "probe_port_mismatch",
            "resources_exceed_nodes",
            "untolerated_taints",
            "limit_range_violation",
            "host_port_conflict",
            "dns_policy",
            "local_traffic_policy",
            "rollout_strategy_unsafe",
            "liveness_kills",
            "sidecar_blocks_completion",
        },
        ("Virtualization", "Network/Storage Issue"): {"network_policy_deny"},
        ("Virtualization", "Operation Error"): {
            "scaled_to_zero",
            "stale_claim_ref",
            "missing_storage_class",
            "node_cordoned",
            "quota_exceeded",
            "stuck_finalizer",
        },
        ("Virtualization", "Dependency Problem"): {
            "unschedulable_placement",
            "upstream_unavailable",
            "admission_webhook_failure",
        },
        ("Application", "Misconfiguration"): {
            "changed_template",
            "duplicate_env",
            "env_address_wrong_port",
            "bad_image",
            "wrong_program",
            "client_wrong_port",
            "tls_required",
            "recent_app_change",
            "container_port_clash",
        },
        ("Application", "Authentication Issue"): {"database_auth", "runtime_credential_drift"},
        ("Application", "Dependency Problem"): {"crash_loop", "init_container_failure"},
    }
    seen: dict[str, tuple[str, str]] = {}
    for (level, fault_type), mechanisms in by_class.items():
        for m in mechanisms:
            seen[m] = (az.ROOT_CAUSES[m].system_level, az.ROOT_CAUSES[m].fault_type)
            assert seen[m] == (level, fault_type), m
    assert set(seen) == set(az.ROOT_CAUSES)
    d = dep("worker")
    [f] = az.crash_looping(snap(d, pod(d, waiting="CrashLoopBackOff", restarts=1)))
    assert f.root_cause == az.ROOT_CAUSES["crash_loop"]


async def test_a_crash_is_read_before_the_restart_count_moves(tmp_path: Path) -> None:
    """Right after the first crash a container waits in CrashLoopBackOff with no restart counted yet: its current
    log (the crashed instance's, as ``kubectl logs`` shows it) is the only account of why, and must be read."""
    from stratus.contracts import DiagnoseRequest
    from stratus.reasoners.rulebook import RulebookDiagnosisReasoner

    from .rulebook_cases.casetools import CaseTools

    d, cm, s_db = _database()
    client = dep("orders")
    crashed = pod(client, waiting="CrashLoopBackOff", restarts=0)
    crashed["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"reason": "Error", "exitCode": 2}}
    logs = {
        "orders-x1/orders": "Read database URL: orders-mongo:27017\n"
        'PNC not authorized on orders-db to execute command { count: "orders" }\npanic: not authorized'
    }
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all([d, pod(d, "db1"), cm, s_db, client, crashed]))
    (tmp_path / "events.yaml").write_text("[]")
    (tmp_path / "logs.yaml").write_text(yaml.safe_dump(logs))
    diagnosis = await RulebookDiagnosisReasoner().diagnose(
        DiagnoseRequest(incident_id="i", scope=NS), CaseTools(tmp_path)
    )
    assert diagnosis.localisation[0] == "orders-mongo"
    assert diagnosis.root_cause == az.ROOT_CAUSES["database_auth"]
