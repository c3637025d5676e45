# ruff: noqa: E501 - the step templates read best one per line
"""The synthetic dataset of the memory suite: agent steps and incident snapshots, regenerable by one command.

Synthetic, and said so: steps are drawn from templates that reproduce the answers Stratus's own tools give (the
confinement refusals are produced by the real kubectl parser; unknown-tool, malformed-call and repeated-call
answers use the tool loop's wording), over four applications' service names, with seeded variation of names,
hashes, addresses and counts. The same template on another app, service or seed is a *rerun* of the same step:
that is the only signal the encoder's contrastive training sees (no failure labels). Labels, used only to build
the knowledge base and to evaluate, come from what the step led to: a refusal, an error answer, or (for writes)
whether its transaction was aborted.

Incidents: scope snapshots (pods, workloads, services, events, logs) of eight kinds of fault, each on several
services of each app, with noise (healthy pods, unrelated log lines). Equivalent incidents are those of the same
fault kind.

``python -m arena.bench.memory.dataset`` (or ``stratus bench --suite memory --regenerate``) writes
``data/steps-v1.jsonl`` and ``data/incidents-v1.jsonl``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratus.confinement import Refusal
from stratus.kubectl import parse_command

VERSION = "v1"
DATA_DIR = Path(__file__).parent / "data"
APPS: dict[str, list[str]] = {
    "hotel-reservation": ["frontend", "search", "geo", "profile", "rate", "recommendation", "reservation", "user"],
    "social-network": ["compose-post-service", "home-timeline-service", "user-service", "social-graph-service",
                       "media-service", "text-service", "url-shorten-service", "user-timeline-service"],
    "shop": ["web", "cart", "db", "catalog", "checkout"],
    "astronomy-shop": ["frontend", "cartservice", "checkoutservice", "currencyservice", "paymentservice",
                       "productcatalogservice", "shippingservice", "quoteservice"],
}  # fmt: skip
TRAIN_APPS = ("hotel-reservation", "social-network")
TEST_APPS = ("shop", "astronomy-shop")
DATABASES = ["mongodb", "postgres", "mysql", "redis", "memcached"]

Step = dict[str, Any]


class Ctx:
    def __init__(self, rng: random.Random, app: str, service: str) -> None:
        self.rng, self.app, self.service = rng, app, service
        self.ns = f"test-{app}" if rng.random() < 0.5 else f"{app}-{rng.randint(1, 99)}"
        self.others = [s for s in APPS[app] if s != service]

    def h(self, n: int = 5) -> str:
        return "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))

    def pod(self, svc: str | None = None) -> str:
        return f"{svc or self.service}-{self.rng.randint(10**8, 10**9):x}"[:22] + f"-{self.h()}"

    def ip(self) -> str:
        return f"10.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"

    def other(self) -> str:
        return self.rng.choice(self.others)

    def db(self) -> str:
        return f"{self.rng.choice(DATABASES)}-{self.other()}"[:30]

    def age(self) -> str:
        return f"{self.rng.randint(1, 59)}{self.rng.choice('smh')}"


def _refusal(command: str, role: str, ns: str) -> str:
    try:
        parse_command(command, role=role, namespace=ns)  # type: ignore[arg-type]
    except Refusal as exc:
        return str(exc)
    return "ok"


def _tools(agent: str) -> str:
    tools = "kubectl, get_logs, get_events, get_traces, list_objects, get_object"
    return tools + (", submit_diagnosis" if agent == "diagnoser" else ", scale, set_image, set_env, end_transaction")


def _table(c: Ctx, bad: str | None = None) -> str:
    rows = ["NAME READY STATUS RESTARTS AGE"]
    for svc in c.rng.sample(APPS[c.app], min(4, len(APPS[c.app]))):
        status = bad if (bad and svc == c.service) else "Running"
        ready = "0/1" if status != "Running" else "1/1"
        rows.append(f"{c.pod(svc)} {ready} {status} {c.rng.randint(0, 9) if bad else 0} {c.age()}")
    return "\n".join(rows)


# --- ok steps (several are look-alikes of failures: logs and events full of errors are what a diagnosis reads) ---
OK: list[Callable[[Ctx, str], tuple[str, str, str]]] = [
    lambda c, a: ("list_objects", json.dumps({"kind": "Pod"}), _table(c, c.rng.choice(["CrashLoopBackOff", "Error", None]))),
    lambda c, a: ("get_logs", json.dumps({"pod": c.service, "tail": 50}),
                  f"{c.rng.choice(['ERROR', 'error', 'WARN'])} dial tcp {c.ip()}:{c.rng.choice([5432, 27017, 6379])}: "
                  f"connect: connection refused\nretrying in {c.rng.randint(1, 9)}s"),
    lambda c, a: ("get_logs", json.dumps({"pod": c.pod(), "previous": True}),
                  f"FATAL: authentication failed for user \"{c.other()}\" on {c.db()}\nexit status 1"),
    lambda c, a: ("get_events", "{}", f"{c.age()} Warning BackOff pod/{c.pod()} Back-off restarting failed container\n"
                  f"{c.age()} Normal Pulled pod/{c.pod(c.other())} Container image already present"),
    lambda c, a: ("get_object", json.dumps({"kind": "Deployment", "name": c.service}),
                  f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {c.service}\nspec:\n  replicas: "
                  f"{c.rng.randint(0, 3)}\nstatus:\n  availableReplicas: {c.rng.randint(0, 3)}"),
    lambda c, a: ("kubectl", json.dumps({"command": f"kubectl get pods -n {c.ns} -o wide"}), _table(c)),
    lambda c, a: ("kubectl", json.dumps({"command": f"kubectl describe pod {c.pod()} -n {c.ns}"}),
                  f"Name: {c.pod()}\nStatus: Running\nState: Waiting\n  Reason: CrashLoopBackOff\nLast State: "
                  f"Terminated\n  Reason: Error\n  Exit Code: {c.rng.randint(1, 137)}"),
    lambda c, a: ("get_traces", json.dumps({"service": c.other()}),
                  f"{c.other()} -> {c.service} GET /{c.other()}: {c.rng.randint(1, 90)} errors of "
                  f"{c.rng.randint(100, 500)} (deepest failure: {c.service})"),
    lambda c, a: ("list_objects", json.dumps({"kind": "Service"}),
                  "NAME TYPE CLUSTER-IP PORT(S)\n" + "\n".join(f"{s} ClusterIP {c.ip()} {c.rng.choice([80, 8080, 5000])}/TCP"
                                                              for s in c.rng.sample(APPS[c.app], 3))),
    lambda c, a: ("kubectl", json.dumps({"command": f"kubectl -n {c.ns} scale deployment {c.service} --replicas=1"}),
                  f"deployment.apps/{c.service} scaled") if a == "mitigator" else
                 ("kubectl", json.dumps({"command": f"kubectl -n {c.ns} rollout history deployment/{c.service}"}),
                  f"deployment.apps/{c.service}\nREVISION CHANGE-CAUSE\n1 <none>\n2 <none>"),
    lambda c, a: ("set_env", json.dumps({"kind": "Deployment", "name": c.service, "env": {"DB_HOST": c.db()}}),
                  f"deployment.apps/{c.service} env updated") if a == "mitigator" else
                 ("get_events", json.dumps({"namespace": c.ns}), f"{c.age()} Warning Unhealthy pod/{c.pod()} "
                  f"Readiness probe failed: HTTP probe failed with statuscode: {c.rng.choice([500, 503])}"),
    lambda c, a: ("submit_diagnosis", json.dumps({"localisation": [c.service], "summary": f"{c.service} fails"}),
                  "Diagnosis recorded.") if a == "diagnoser" else
                 ("end_transaction", json.dumps({"reason": f"{c.service} fixed"}), "Transaction ended."),
    lambda c, a: ("kubectl", json.dumps({"command": f"kubectl -n {c.ns} rollout undo deployment/{c.service}"}),
                  f"deployment.apps/{c.service} rolled back") if a == "mitigator" else
                 ("kubectl", json.dumps({"command": f"kubectl get endpoints {c.service} -n {c.ns}"}),
                  f"NAME ENDPOINTS AGE\n{c.service} {c.ip()}:{c.rng.choice([80, 8080])} {c.age()}"),
]  # fmt: skip

FAIL: dict[str, list[Callable[[Ctx, str], tuple[str, str, str]]]] = {
    "wrong_tool": [
        lambda c, a: (t := c.rng.choice(["get_pod_logs", "restart_service", "describe_pod", "scale_deployment",
                                         "kubectl_exec", "check_health"]),
                      json.dumps({"name": c.service}),
                      f"Unknown tool {t!r}. The tools are: {_tools(a)}. Call one of them."),
        lambda c, a: ("kubectl", json.dumps({"command": f"kubectl -n {c.ns} scale deployment {c.service} --replicas=2"}),
                      _refusal(f"kubectl -n {c.ns} scale deployment {c.service} --replicas=2", "read", c.ns)),
        lambda c, a: ("kubectl", json.dumps({"command": f"kubectl delete pod {c.pod()} -n {c.ns}"}),
                      _refusal(f"kubectl delete pod {c.pod()} -n {c.ns}", "read", c.ns)),
    ],
    "hallucinated_name": [
        lambda c, a: ("get_object", json.dumps({"kind": "Deployment", "name": f"{c.service}-{c.rng.choice(['svc', 'app', 'deployment', 'v2'])}"}),
                      f"Deployment {c.service}-svc not found in namespace {c.ns}. List the objects of this kind to see "
                      "what exists."),
        lambda c, a: ("get_logs", json.dumps({"pod": f"{c.service}-pod-{c.rng.randint(0, 3)}"}),
                      f"No pod or workload named {c.service}-pod in namespace {c.ns}. Its pods: {c.pod()}, {c.pod(c.other())}."),
        lambda c, a: ("kubectl", json.dumps({"command": f"kubectl get configmap {c.service}-config -n {c.ns}"}),
                      f'Error from server (NotFound): configmaps "{c.service}-config" not found'),
    ],
    "loop": [
        lambda c, a: (t := c.rng.choice(["get_logs", "list_objects", "get_events", "get_object"]),
                      json.dumps({"pod": c.service}),
                      f"You already called {t} with these arguments at step {c.rng.randint(1, 9)}; nothing you did "
                      "since changes its answer. Use that result, or call a different tool."),
        lambda c, a: ("kubectl", json.dumps({"command": f"kubectl get pods -n {c.ns}"}),
                      f"You already called kubectl with these arguments at step {c.rng.randint(1, 9)}; nothing you did "
                      "since changes its answer. Use that result, or call a different tool."),
    ],
    "refused_command": [
        lambda c, a: ("kubectl", json.dumps({"command": (cmd := f"kubectl logs {c.pod()} -n {c.ns} | grep -i error")}),
                      _refusal(cmd, "write", c.ns)),
        lambda c, a: ("kubectl", json.dumps({"command": (cmd := f"kubectl exec -it {c.pod()} -n {c.ns} -- sh")}),
                      _refusal(cmd, "write", c.ns)),
        lambda c, a: ("kubectl", json.dumps({"command": (cmd := f"kubectl edit deployment {c.service} -n {c.ns}")}),
                      _refusal(cmd, "write", c.ns)),
        lambda c, a: ("kubectl", json.dumps({"command": (cmd := f"kubectl get pods -n {c.ns} && kubectl get svc -n {c.ns}")}),
                      _refusal(cmd, "write", c.ns)),
        lambda c, a: ("kubectl", json.dumps({"command": (cmd := f"kubectl delete namespace {c.ns}")}),
                      _refusal(cmd, "write", c.ns)),
    ],
    "malformed_call": [
        lambda c, a: (t := c.rng.choice(["scale", "get_logs", "set_env", "get_object"]),
                      f'{{"kind": "Deployment", "name": "{c.service}", "replicas": ',
                      f"Your call to {t} was not run: the arguments are not valid JSON (Expecting value at position "
                      f"{c.rng.randint(30, 60)}). Call {t} again with a JSON object of arguments."),
        lambda c, a: ("get_logs", json.dumps({"service": c.service}),
                      "Invalid arguments for get_logs: pod: Field required; service: Extra inputs are not permitted. "
                      "Call get_logs again with corrected arguments."),
        lambda c, a: ("list_objects", json.dumps(c.service),
                      "Your call to list_objects was not run: the arguments are a string, not a JSON object. Call "
                      "list_objects again with a JSON object of arguments."),
    ],
    "preceded_abort": [
        lambda c, a: ("kubectl", json.dumps({"command": f"kubectl -n {c.ns} scale deployment {c.other()} --replicas=0"}),
                      f"deployment.apps/{c.other()} scaled"),
        lambda c, a: ("set_image", json.dumps({"kind": "Deployment", "name": c.service,
                                               "image": f"{c.service}:{c.rng.choice(['latest-fixed', 'v2-patched', 'stable-new'])}"}),
                      f"deployment.apps/{c.service} image updated"),
        lambda c, a: ("kubectl", json.dumps({"command": f"kubectl -n {c.ns} patch service {c.service} -p "
                                             f"'{{\"spec\":{{\"ports\":[{{\"port\":80,\"targetPort\":{c.rng.randint(1000, 9999)}}}]}}}}'"}),
                      f"service/{c.service} patched"),
        lambda c, a: ("kubectl", json.dumps({"command": f"kubectl -n {c.ns} delete pvc data-{c.db()}"}),
                      f'persistentvolumeclaim "data-{c.db()}" deleted'),
    ],
}  # fmt: skip


def steps(seeds: int = 4) -> list[Step]:
    out: list[Step] = []
    for app, services in APPS.items():
        for service in services:
            for seed in range(seeds):
                for agent in ("diagnoser", "mitigator"):
                    rng = random.Random(f"{app}/{service}/{seed}/{agent}")
                    c = Ctx(rng, app, service)
                    trace = f"{app}/{service}/{seed}/{agent}"
                    n = rng.randint(6, 10)
                    kinds = [k for k in FAIL if agent == "mitigator" or k != "preceded_abort"]
                    failing = {rng.randrange(n): rng.choice(kinds) for _ in range(rng.randint(1, 3))}
                    for i in range(n):
                        label = failing.get(i, "ok")
                        if label == "ok":
                            t = rng.randrange(len(OK))
                            tool, args, result = OK[t](c, agent)
                            template = f"ok/{t}/{agent if t >= 9 else ''}"
                        else:
                            t = rng.randrange(len(FAIL[label]))
                            tool, args, result = FAIL[label][t](c, agent)
                            template = f"{label}/{t}"
                        out.append(
                            {
                                "trace": trace,
                                "app": app,
                                "service": service,
                                "seed": seed,
                                "agent": agent,
                                "step": i + 1,
                                "tool": tool,
                                "arguments": args,
                                "result": result,
                                "label": label,
                                "template": template,
                                "split": "train" if app in TRAIN_APPS else "test",
                            }
                        )
    return out


# --- incidents -------------------------------------------------------------------------------------------------

FAULTS = (
    "crashloop_auth",
    "scaled_to_zero",
    "bad_image",
    "unreachable_port",
    "unschedulable",
    "unbound_claim",
    "wrong_binary",
    "oom_killed",
)


def _pod(c: Ctx, svc: str, phase: str = "Running", waiting: str | None = None, ready: bool = True) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "kind": "Pod",
        "metadata": {"name": c.pod(svc), "labels": {"app": svc}},
        "status": {
            "phase": phase,
            "podIP": c.ip(),
            "containerStatuses": [
                {"name": svc, "state": state, "restartCount": c.rng.randint(1, 20) if waiting else 0}
            ],
            "conditions": [{"type": "Ready", "status": "True" if ready and not waiting else "False"}],
        },
    }


def incident(fault: str, app: str, service: str, seed: int) -> dict[str, Any]:
    """A scope snapshot as plain data (objects, events, logs) of ``fault`` on ``service``."""
    rng = random.Random(f"incident/{fault}/{app}/{service}/{seed}")
    c = Ctx(rng, app, service)
    healthy = [s for s in rng.sample(APPS[app], min(len(APPS[app]), 4)) if s != service]
    pods = [_pod(c, s) for s in healthy]
    deployments = {s: (1, 1) for s in [*healthy, service]}
    services = [*healthy, service]
    events: list[dict[str, Any]] = [{"reason": "Pulled", "type": "Normal", "message": "image present"}]
    logs: dict[str, str] = {
        f"{pods[0]['metadata']['name']}/x": f"GET /{c.other()} 200 {rng.randint(1, 99)}ms\n" * rng.randint(1, 3)
    }
    caller = healthy[0] if healthy else service
    bad: dict[str, Any]
    if fault == "crashloop_auth":
        bad = _pod(c, service, waiting="CrashLoopBackOff")
        deployments[service] = (1, 0)
        events.append({"reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container"})
        logs[f"{bad['metadata']['name']}/x#previous"] = (
            f'FATAL: authentication failed for user "{c.other()}" on {c.ip()}:27017\nexit status 1\n'
        )
    elif fault == "scaled_to_zero":
        bad = {}
        deployments[service] = (0, 0)
        logs[f"{c.pod(caller)}/x"] = f"ERROR calling {service}: no healthy upstream after {rng.randint(2, 9)} retries\n"
    elif fault == "bad_image":
        bad = _pod(c, service, phase="Pending", waiting=rng.choice(["ImagePullBackOff", "ErrImagePull"]))
        deployments[service] = (1, 0)
        events += [
            {"reason": "Failed", "type": "Warning", "message": "Failed to pull image"},
            {"reason": "BackOff", "type": "Warning", "message": "Back-off pulling image"},
        ]
    elif fault == "unreachable_port":
        bad = {}
        logs[f"{c.pod(caller)}/x"] = (
            f"ERROR dial tcp {c.ip()}:{rng.randint(1000, 9999)}: connect: connection refused\n" * rng.randint(2, 5)
        )
    elif fault == "unschedulable":
        bad = _pod(c, service, phase="Pending", ready=False)
        deployments[service] = (1, 0)
        events.append({"reason": "FailedScheduling", "type": "Warning", "message": "0/3 nodes are available"})
    elif fault == "unbound_claim":
        bad = _pod(c, service, phase="Pending", ready=False)
        deployments[service] = (1, 0)
        events.append({"reason": "ProvisioningFailed", "type": "Warning", "message": "storageclass not found"})
        events.append({"reason": "FailedScheduling", "type": "Warning", "message": "unbound immediate claims"})
    elif fault == "wrong_binary":
        bad = _pod(c, service, waiting="CrashLoopBackOff")
        deployments[service] = (1, 0)
        events.append({"reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container"})
        logs[f"{bad['metadata']['name']}/x#previous"] = f"exec /usr/local/bin/{c.other()}: no such file or directory\n"
    else:  # oom_killed
        bad = _pod(c, service, waiting="CrashLoopBackOff")
        deployments[service] = (1, 0)
        events.append({"reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container"})
        events.append({"reason": "OOMKilling", "type": "Warning", "message": "Memory cgroup out of memory"})
        logs[f"{bad['metadata']['name']}/x#previous"] = f"allocating {rng.randint(100, 900)}MB buffer\nKilled\n"
    if bad:
        pods.append(bad)
    objects: dict[str, list[dict[str, Any]]] = {
        "Pod": pods,
        "Deployment": [
            {
                "kind": "Deployment",
                "metadata": {"name": s},
                "spec": {
                    "replicas": r,
                    "selector": {"matchLabels": {"app": s}},
                    "template": {"metadata": {"labels": {"app": s}}},
                },
                "status": {"availableReplicas": av},
            }
            for s, (r, av) in deployments.items()
        ],
        "Service": [{"kind": "Service", "metadata": {"name": s}, "spec": {"selector": {"app": s}}} for s in services],
    }
    if fault == "unbound_claim":
        objects["PersistentVolumeClaim"] = [
            {"kind": "PersistentVolumeClaim", "metadata": {"name": f"data-{service}"}, "status": {"phase": "Pending"}}
        ]
    return {
        "fault": fault,
        "app": app,
        "service": service,
        "seed": seed,
        "namespace": c.ns,
        "objects": objects,
        "events": events,
        "logs": logs,
    }


def incidents(seeds: int = 2) -> list[dict[str, Any]]:
    return [
        incident(fault, app, service, seed)
        for fault in FAULTS
        for app, services in APPS.items()
        for service in services[:5]
        for seed in range(seeds)
    ]


def write(out: Path = DATA_DIR) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"steps": out / f"steps-{VERSION}.jsonl", "incidents": out / f"incidents-{VERSION}.jsonl"}
    paths["steps"].write_text("".join(json.dumps(s, sort_keys=True) + "\n" for s in steps()))
    paths["incidents"].write_text("".join(json.dumps(i, sort_keys=True) + "\n" for i in incidents()))
    return paths


def load(name: str, out: Path = DATA_DIR) -> list[dict[str, Any]]:
    path = out / f"{name}-{VERSION}.jsonl"
    if not path.exists():
        write(out)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    for name, path in write().items():
        print(f"{name}: {path} ({sum(1 for _ in path.open())} records)")  # noqa: T201
