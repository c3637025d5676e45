"""The kubelet emulation: logs, exec, restart back-off, image pulls, replacement of killed pods, events."""

from __future__ import annotations

import itertools
import time

import pytest
from kubernetes import client
from kubernetes.stream import stream

from arena.server import ArenaServer
from tests.fixtures_arena import Kubectl, wait_for

from .helpers import CLIENT_SOCKETS, CLIENTS, deployment, pod, status_of

pytestmark = [pytest.mark.integration, CLIENT_SOCKETS]


def _running(core: client.CoreV1Api, ns: str, name: str) -> None:
    wait_for(
        lambda: all(c.ready for c in core.read_namespaced_pod(name, ns).status.container_statuses or [False]),
        what=f"pod {name} ready",
    )


@pytest.mark.parametrize("via", CLIENTS)
def test_logs_tail_container_and_previous(
    via: str, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    two = pod("two")
    two["spec"]["containers"].append({"name": "side", "image": "busybox:1.36"})
    core.create_namespaced_pod(arena_ns, two)
    core.create_namespaced_pod(arena_ns, pod("crashy", image="crash:1"))
    _running(core, arena_ns, "two")
    wait_for(
        lambda: core.read_namespaced_pod("crashy", arena_ns).status.container_statuses[0].restart_count >= 1,
        what="a restart",
    )
    if via == "python":
        assert core.read_namespaced_pod_log("two", arena_ns, container="side") == "side listening\nready\n"
        assert core.read_namespaced_pod_log("two", arena_ns, container="main", tail_lines=1) == "ready\n"
        prev = core.read_namespaced_pod_log("crashy", arena_ns, previous=True)
        assert "panic: cannot connect to database" in prev
        with pytest.raises(client.ApiException) as exc:
            core.read_namespaced_pod_log("two", arena_ns)
        assert exc.value.status == 400 and "a container name must be specified for pod two" in exc.value.body
        with pytest.raises(client.ApiException) as exc:
            core.read_namespaced_pod_log("two", arena_ns, container="main", previous=True)
        assert status_of(exc.value)["message"] == 'previous terminated container "main" in pod "two" not found'
    else:
        assert kubectl("logs", "two", "-c", "side", ns=arena_ns) == "side listening\nready\n"
        assert kubectl("logs", "two", "-c", "main", "--tail=1", ns=arena_ns) == "ready\n"
        assert "panic: cannot connect" in kubectl("logs", "crashy", "--previous", ns=arena_ns)
        assert "panic: cannot connect" in kubectl("logs", "crashy", "-p", "--tail=1", ns=arena_ns)
        assert kubectl("logs", "two", ns=arena_ns).startswith("main listening")  # kubectl defaults to the first


@pytest.mark.parametrize("via", CLIENTS)
def test_exec(via: str, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_pod(arena_ns, pod("box"))
    _running(core, arena_ns, "box")
    if via == "python":
        out = stream(
            core.connect_get_namespaced_pod_exec,
            "box",
            arena_ns,
            command=["echo", "hello", "arena"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
        assert out == "hello arena\n"
        resp = stream(
            core.connect_get_namespaced_pod_exec,
            "box",
            arena_ns,
            command=["nope"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=5)
        assert resp.returncode == 127 and "executable file not found" in resp.read_stderr()
    else:
        assert kubectl("exec", "box", "--", "echo", "hello", "arena", ns=arena_ns) == "hello arena\n"
        r = kubectl.run("exec", "box", "-c", "main", "--", "nope", ns=arena_ns, check=False)
        assert r.returncode == 127 and "command terminated with exit code 127" in r.stderr
        r = kubectl.run("exec", "missing-pod", "--", "true", ns=arena_ns, check=False)
        assert 'pods "missing-pod" not found' in r.stderr


def test_crash_loop_backs_off_with_growing_delays(
    arena: ArenaServer, arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_pod(arena_ns, pod("crashy", image="crash:2"))
    starts: list[float] = []
    seen = -1
    deadline = time.monotonic() + 20
    while len(starts) < 4 and time.monotonic() < deadline:
        st = core.read_namespaced_pod("crashy", arena_ns).status.container_statuses
        if st and st[0].restart_count != seen:
            seen = st[0].restart_count
            starts.append(time.monotonic())
        time.sleep(0.02)
    assert len(starts) == 4, "the container should restart repeatedly"
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]
    assert gaps[1] > gaps[0] * 1.5, f"back-off should grow: {gaps}"
    cs = core.read_namespaced_pod("crashy", arena_ns).status.container_statuses[0]
    assert cs.last_state.terminated.exit_code == 1 and cs.last_state.terminated.reason == "Error"
    wait_for(lambda: "CrashLoopBackOff" in kubectl("get", "pod", "crashy", ns=arena_ns), what="CrashLoopBackOff")
    events = kubectl("get", "events", "--field-selector", "involvedObject.name=crashy", ns=arena_ns)
    assert "Back-off restarting failed container main in pod crashy" in events


def test_unknown_image_goes_to_image_pull_backoff(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_pod(arena_ns, pod("pull", image="missing-image:9.9"))
    wait_for(
        lambda: (
            core.read_namespaced_pod("pull", arena_ns).status.container_statuses[0].state.waiting.reason
            == "ImagePullBackOff"
        ),
        what="ImagePullBackOff",
    )
    assert core.read_namespaced_pod("pull", arena_ns).status.phase == "Pending"
    out = kubectl("describe", "pod", "pull", ns=arena_ns)
    assert "Reason:       ImagePullBackOff" in out or "ImagePullBackOff" in out
    assert 'Failed to pull image "missing-image:9.9"' in out and "Error: ErrImagePull" in out
    r = kubectl.run("logs", "pull", ns=arena_ns, check=False)
    assert "is waiting to start: trying and failing to pull image" in r.stderr


def test_killed_pod_is_replaced_by_its_replica_set(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(k8s_client)
    core = client.CoreV1Api(k8s_client)
    apps.create_namespaced_deployment(arena_ns, deployment("web", replicas=2))
    wait_for(lambda: apps.read_namespaced_deployment("web", arena_ns).status.ready_replicas == 2, what="ready")
    victim = core.list_namespaced_pod(arena_ns).items[0].metadata.name
    core.delete_namespaced_pod(victim, arena_ns, grace_period_seconds=0)

    def replaced() -> bool:
        pods = [p for p in core.list_namespaced_pod(arena_ns).items if not p.metadata.deletion_timestamp]
        return (
            victim not in {p.metadata.name for p in pods}
            and sum(1 for p in pods if p.status.container_statuses and p.status.container_statuses[0].ready) == 2
        )

    wait_for(replaced, what="a replacement pod")
    rs = apps.list_namespaced_replica_set(arena_ns).items[0].metadata.name
    events = kubectl("get", "events", "--field-selector", f"involvedObject.name={rs}", ns=arena_ns)
    assert events.count("SuccessfulCreate") >= 1 and "Created pod: " in events


def test_config_error_for_missing_config_map(arena_ns: str, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    p = pod("cfg")
    p["spec"]["containers"][0]["env"] = [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}
    ]
    core.create_namespaced_pod(arena_ns, p)
    wait_for(
        lambda: (
            core.read_namespaced_pod("cfg", arena_ns).status.container_statuses[0].state.waiting.reason
            == "CreateContainerConfigError"
        ),
        what="CreateContainerConfigError",
    )
    assert core.read_namespaced_pod("cfg", arena_ns).status.container_statuses[0].state.waiting.message == (
        'configmap "absent" not found'
    )
    core.create_namespaced_config_map(arena_ns, {"metadata": {"name": "absent"}, "data": {"k": "v"}})
    _running(core, arena_ns, "cfg")


def test_init_containers_and_restart_policy_never(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_pod(arena_ns, pod("init-ok", initContainers=[{"name": "setup", "image": "busybox:1"}]))
    core.create_namespaced_pod(arena_ns, pod("init-bad", initContainers=[{"name": "setup", "image": "crash:1"}]))
    core.create_namespaced_pod(arena_ns, pod("once", image="crash:1", restartPolicy="Never"))
    _running(core, arena_ns, "init-ok")
    ok = core.read_namespaced_pod("init-ok", arena_ns).status.init_container_statuses[0]
    assert ok.state.terminated.reason == "Completed" and ok.restart_count == 0
    wait_for(lambda: "Init:CrashLoopBackOff" in kubectl("get", "pod", "init-bad", ns=arena_ns), what="Init:CrashLoop")
    wait_for(lambda: core.read_namespaced_pod("once", arena_ns).status.phase == "Failed", what="Failed")
    cs = core.read_namespaced_pod("once", arena_ns).status.container_statuses[0]
    assert cs.restart_count == 0 and cs.state.terminated.exit_code == 1
    assert "Error" in kubectl("get", "pod", "once", ns=arena_ns)


def test_an_init_container_that_never_completes_is_running_but_not_ready(
    arena_ns: str, kubectl: Kubectl, k8s_client: client.ApiClient
) -> None:
    """As the kubelet reports it: a regular init container is ready only once it has completed; while it runs the
    pod stays Pending in Init:0/1."""
    core = client.CoreV1Api(k8s_client)
    hang = {"name": "hang", "image": "hang:1"}
    core.create_namespaced_pod(arena_ns, pod("init-hangs", initContainers=[hang]))

    def running() -> bool:
        statuses = core.read_namespaced_pod("init-hangs", arena_ns).status.init_container_statuses or []
        return bool(statuses) and statuses[0].state.running is not None

    wait_for(running, what="init container running")
    time.sleep(1.0)  # many kubelet ticks with the fast timings: a running init container never turns ready
    st = core.read_namespaced_pod("init-hangs", arena_ns).status
    assert st.phase == "Pending" and st.init_container_statuses[0].ready is False
    assert "Init:0/1" in kubectl("get", "pod", "init-hangs", ns=arena_ns)
