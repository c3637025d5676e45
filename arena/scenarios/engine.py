"""Runs scenario files against an arena through the Kubernetes API: inject, observe symptoms, apply a fix, judge it
with the oracles, recover. Behaviour faults go in as chaos objects (see ``arena.behaviour.chaos``); load and traces
come from the app plane's HTTP endpoints, discovered through ConfigMap ``arena-system/telemetry``.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from arena.apps import APPS, AppSpec
from arena.behaviour.chaos import CHAOS_NAMESPACE, ChaosSpec, ChaosTarget, chaos_configmap
from arena.scenarios import schema as s
from arena.scenarios.kube import Kube, KubeError, Obj
from arena.scenarios.oracles import Mode, Verdict, all_ready, every_pod_ready, field_check
from arena.workload.generator import WorkloadReport, WorkloadSpec

CATALOGUE_DIR = Path(__file__).parent / "catalogue"
SREGYM_DIR = CATALOGUE_DIR / "sregym"
"""The SREGym problems; the AIOpsLab suites read only the catalogue's top level."""
TELEMETRY_NAMESPACE = "arena-system"
TELEMETRY_CONFIGMAP = "telemetry"
CLUSTER_KINDS = {
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ClusterRole",
    "ClusterRoleBinding",
}
BINDINGS_CONFIGMAP = "scenario-bindings"
"""ConfigMap in ``arena-system`` holding each injected scenario's inject-time choices (``select``)."""


class StepError(Exception):
    """A scenario step that could not be carried out; the message says which and why."""


# ------------------------------------------------------------------------------------------------------ registry
class Registry:
    """Every problem id of the scenario files in ``dirs`` (folders, searched recursively, or single files)."""

    def __init__(self, dirs: list[Path] | None = None, recursive: bool = True) -> None:
        self.by_id: dict[str, tuple[s.Scenario, str]] = {}
        for d in dirs or [CATALOGUE_DIR]:
            found = (d.rglob("*.yaml") if recursive else d.glob("*.yaml")) if d.is_dir() else [d]
            for path in sorted(found):
                scenario = s.load_scenario(path)
                for pid, task in zip(scenario.ids(), scenario.tasks, strict=True):
                    self.by_id[pid] = (scenario, task)

    def scenarios(self) -> list[tuple[s.Scenario, str]]:
        """One entry per scenario file: the scenario and its main problem id (mitigation when it has one)."""
        seen: dict[int, tuple[s.Scenario, str]] = {}
        for pid in self.ids():
            sc, task = self.by_id[pid]
            if id(sc) not in seen or task == "mitigation":
                seen[id(sc)] = (sc, pid)
        return list(seen.values())

    def get(self, pid: str) -> tuple[s.Scenario, str]:
        try:
            return self.by_id[pid]
        except KeyError:
            near = [p for p in self.by_id if pid.split("-")[0] in p][:5]
            raise KeyError(f"no scenario {pid!r}" + (f"; did you mean {near}?" if near else "")) from None

    def ids(self) -> list[str]:
        return sorted(self.by_id)


# ------------------------------------------------------------------------------------------------------ the plane
class PlaneClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=120)

    def workload(self, namespace: str, spec: WorkloadSpec, time_scale: float = 0.0) -> WorkloadReport:
        body = {"namespace": namespace, "time_scale": time_scale, **spec.model_dump()}
        r = self.http.post(f"{self.url}/arena/workload", json=body)
        r.raise_for_status()
        return WorkloadReport.model_validate(r.json())

    def request(self, namespace: str, method: str, path: str) -> dict[str, Any]:
        r = self.http.post(f"{self.url}/arena/request", json={"namespace": namespace, "method": method, "path": path})
        r.raise_for_status()
        return dict(r.json())

    def traces(self, service: str, lookback: str = "5m", limit: int = 200, **tags: str) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"service": service, "lookback": lookback, "limit": limit}
        if tags:
            import json

            params["tags"] = json.dumps(tags)
        r = self.http.get(f"{self.url}/api/traces", params=params)
        r.raise_for_status()
        return list(r.json().get("data") or [])

    def close(self) -> None:
        self.http.close()


def plane_url(kube: Kube) -> str | None:
    cm = kube.get("ConfigMap", TELEMETRY_NAMESPACE, TELEMETRY_CONFIGMAP)
    return ((cm or {}).get("data") or {}).get("url")


def publish_plane_url(kube: Kube, url: str) -> None:
    ensure_namespace(kube, TELEMETRY_NAMESPACE)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": TELEMETRY_CONFIGMAP, "namespace": TELEMETRY_NAMESPACE},
            "data": {"url": url, "jaeger": url, "prometheus": f"{url}/metrics"},
        }
    )


def ensure_namespace(kube: Kube, name: str) -> None:
    if kube.get("Namespace", None, name) is None:
        try:
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except KubeError as e:
            if e.status != 409:
                raise


# ------------------------------------------------------------------------------------------------------ waiting
def wait_for(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def pods_all_ready(pods: list[Obj]) -> bool:
    return bool(pods) and not every_pod_ready(pods)


@dataclass
class SymptomResult:
    check: str
    present: bool
    detail: str


# ------------------------------------------------------------------------------------------------------ engine
class Engine:
    def __init__(self, kube: Kube, plane: PlaneClient | None = None, time_scale: float = 1.0) -> None:
        self.kube, self.plane, self.time_scale = kube, plane, time_scale
        self.prepared: set[str] = set()
        """Scenarios whose setup ran (``prepare``) and whose inject has not yet."""

    def _plane(self) -> PlaneClient:
        if self.plane is None:
            url = plane_url(self.kube)
            if not url:
                raise StepError(
                    f"no app plane: ConfigMap {TELEMETRY_NAMESPACE}/{TELEMETRY_CONFIGMAP} is missing; run the arena "
                    "with the applications plane (stratus arena serve) or pass --plane-url"
                )
            self.plane = PlaneClient(url)
        return self.plane

    # -- apps ------------------------------------------------------------------------------------------------
    def deploy(self, app: AppSpec) -> None:
        for doc in app.manifests():
            kind, m = doc["kind"], doc["metadata"]
            if kind in CLUSTER_KINDS and self.kube.get(kind, None, m["name"]) is not None:
                continue  # cluster-scoped leftovers (PVs, classes) are kept as they are, as `kubectl apply` would
            self.kube.apply(doc)

    def redeploy(self, app: AppSpec) -> None:
        """Delete the app's namespace, free the PVs its claims held, deploy it again: for when a recovery cannot undo
        everything a policy changed."""
        kube = self.kube
        if kube.get("Namespace", None, app.namespace) is not None:
            kube.delete("Namespace", None, app.namespace)
            wait_for(f"{app.namespace} deleted", lambda: kube.get("Namespace", None, app.namespace) is None, 60)
        for pv in kube.list("PersistentVolume", None):
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if ref.get("namespace") == app.namespace:
                kube.patch("PersistentVolume", None, pv["metadata"]["name"], {"spec": {"claimRef": None}}, "merge")
        self.deploy(app)

    def pods(self, namespace: str, selector: dict[str, str] | None = None) -> list[Obj]:
        return self.kube.list("Pod", namespace, selector)

    def wait_ready(self, namespace: str, timeout: float = 60.0) -> float:
        t0 = time.monotonic()
        wait_for(f"every pod in {namespace} to be Ready", lambda: pods_all_ready(self.pods(namespace)), timeout)
        return time.monotonic() - t0

    # -- inject-time choices --------------------------------------------------------------------------------------
    def bind(self, scenario: s.Scenario, fresh: bool = False) -> dict[str, str]:
        """The values of the scenario's ``select`` bindings: chosen from the cluster's state (``fresh``, as inject
        does, recording them) or the ones recorded at inject (recover and check see what inject chose)."""
        if not scenario.select:
            return {}
        key = _binding_key(scenario)
        if not fresh:
            cm = self.kube.get("ConfigMap", TELEMETRY_NAMESPACE, BINDINGS_CONFIGMAP)
            raw = ((cm or {}).get("data") or {}).get(key)
            if raw:
                return dict(json.loads(raw))
        ns = APPS[scenario.app].namespace
        values = {b.name: self._choose(ns, b) for b in scenario.select}
        ensure_namespace(self.kube, TELEMETRY_NAMESPACE)
        cm = self.kube.get("ConfigMap", TELEMETRY_NAMESPACE, BINDINGS_CONFIGMAP)
        data = {**((cm or {}).get("data") or {}), key: json.dumps(values)}
        self.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": BINDINGS_CONFIGMAP, "namespace": TELEMETRY_NAMESPACE},
                "data": data,
            }
        )
        return values

    def _choose(self, ns: str, b: s.Binding) -> str:
        selector = b.node_of or b.pod_of or b.other_node_than or {}
        pods = sorted(
            (
                p
                for p in self.pods(ns, selector)
                if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            ),
            key=lambda p: p["metadata"]["name"],
        )
        if not pods:
            raise StepError(f"select {b.name}: no Running pod with labels {selector} in {ns}")
        if b.pod_of is not None:
            return str(pods[0]["metadata"]["name"])
        node = str((pods[0].get("spec") or {}).get("nodeName") or "")
        if b.node_of is not None:
            return node
        others = sorted(
            n["metadata"]["name"]
            for n in self.kube.list("Node", None)
            if n["metadata"]["name"] != node
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        )
        if not others:
            raise StepError(f"select {b.name}: no Ready node other than {node}")
        return str(others[0])

    def resolved(self, scenario: s.Scenario, fresh: bool = False) -> s.Scenario:
        """The scenario with its ``${name}`` placeholders replaced by the inject-time choices."""
        values = self.bind(scenario, fresh)
        if not values:
            return scenario
        return s.Scenario.model_validate(_substitute(scenario.model_dump(by_alias=True), values))

    # -- steps -----------------------------------------------------------------------------------------------
    def run_steps(self, scenario: s.Scenario, steps: list[Any]) -> None:
        app = APPS[scenario.app]
        values = self.bind(scenario)
        for i, step in enumerate(steps):
            if values:
                step = type(step).model_validate(_substitute(step.model_dump(by_alias=True), values))
            try:
                self._step(app, step)
            except (KubeError, TimeoutError) as e:
                raise StepError(f"step {i + 1} ({step.action}) failed: {e}") from e

    def prepare(self, scenario: s.Scenario) -> None:
        """Deploy the app as the problem has it (its setup steps), so it is part of the baseline the system under
        test learns; the next inject of this scenario skips them. Nothing to do for a scenario without setup."""
        if not scenario.setup:
            return
        self.bind(scenario, fresh=True)
        self.run_steps(scenario, scenario.setup)
        self.prepared.add(_binding_key(scenario))

    def inject(self, scenario: s.Scenario) -> None:
        key = _binding_key(scenario)
        if key in self.prepared:
            self.prepared.discard(key)
        else:
            self.bind(scenario, fresh=True)
            self.run_steps(scenario, scenario.setup)
        self.run_steps(scenario, scenario.inject)

    def recover(self, scenario: s.Scenario) -> None:
        self.prepared.discard(_binding_key(scenario))
        self.run_steps(scenario, scenario.recover)

    def _ns(self, app: AppSpec, ns: str | None) -> str:
        return ns or app.namespace

    def _step(self, app: AppSpec, step: Any) -> None:
        k, ns = self.kube, app.namespace
        if isinstance(step, s.PatchStep):
            if step.when is not None and self._field(app, step.when) is not None:
                return
            target_ns = None if step.kind in CLUSTER_KINDS else self._ns(app, step.namespace)
            k.patch(step.kind, target_ns, step.name, step.patch, step.patch_type)
        elif isinstance(step, s.ScaleStep):
            k.patch("Deployment", ns, step.deployment, {"spec": {"replicas": step.replicas}}, "merge")
        elif isinstance(step, s.SetImageStep):
            container = {"name": step.container, "image": step.image}
            patch: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [container]}}}}
            k.patch("Deployment", ns, step.deployment, patch, "strategic")
        elif isinstance(step, s.RolloutRestartStep):
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            annotations = {"kubectl.kubernetes.io/restartedAt": stamp}
            patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
            k.patch("Deployment", ns, step.deployment, patch, "strategic")
        elif isinstance(step, s.DeletePodsStep):
            pods = self.pods(ns, step.selector)
            if step.name_prefix:
                pods = [p for p in pods if p["metadata"]["name"].startswith(step.name_prefix)]
            names = [p["metadata"]["name"] for p in pods]
            for name in names:
                k.delete("Pod", ns, name)
            if step.wait_replaced:
                wait_for(
                    f"pods {names} to be gone",
                    lambda: not {p["metadata"]["name"] for p in self.pods(ns)} & set(names),
                    30 * max(self.time_scale, 0.2),
                )
        elif isinstance(step, s.ReplaceStep):
            self._replace(app, step)
        elif isinstance(step, s.ExecStep):
            replicas = self._stop(ns, step.stops)
            try:
                pod = self._pod_for(ns, step.selector)
                out, err, code = k.exec(ns, pod, step.command, step.container)
            finally:
                for name, n in replicas.items():
                    k.patch("Deployment", ns, name, {"spec": {"replicas": n}}, "merge")
            if step.expect_exit is not None and code != step.expect_exit:
                raise StepError(f"exec in {pod} exited {code}: {err.strip() or out.strip()}")
        elif isinstance(step, s.ApplyStep):
            k.apply(step.manifest)
        elif isinstance(step, s.DeleteStep):
            target_ns = None if step.kind in CLUSTER_KINDS else self._ns(app, step.namespace)
            k.delete(step.kind, target_ns, step.name, step.ignore_missing)
        elif isinstance(step, s.RedeployStep):
            if step.delete_namespace:
                k.delete("Namespace", None, ns)
                wait_for(
                    f"namespace {ns} to be deleted", lambda: k.get("Namespace", None, ns) is None, step.wait_deleted_s
                )
            self.deploy(app)
        elif isinstance(step, s.ChaosStep):
            self._chaos(app, step)
        elif isinstance(step, s.DeleteChaosStep):
            k.delete("ConfigMap", CHAOS_NAMESPACE, step.name)
        elif isinstance(step, s.RestoreStep):
            self._restore(app, step)
        elif isinstance(step, s.WaitRolloutStep):
            wait_for(
                f"deployment {step.deployment} to roll out",
                lambda: self._rolled_out(ns, step.deployment),
                step.timeout_s,
            )
        elif isinstance(step, s.WaitReadyStep):
            self.wait_ready(ns, step.timeout_s)
        elif isinstance(step, s.DeleteAllStep):
            for obj in k.list(step.kind, ns, step.selector):
                k.delete(step.kind, ns, obj["metadata"]["name"])
        elif isinstance(step, s.WaitGoneStep):
            gone_ns = None if step.kind in CLUSTER_KINDS else self._ns(app, step.namespace)
            wait_for(
                f"{step.kind}/{step.name} to be gone",
                lambda: k.get(step.kind, gone_ns, step.name) is None,
                step.timeout_s,
            )
        elif isinstance(step, s.CreateJobStep):
            self._create_job(ns, step)
        elif isinstance(step, s.WaitJobStep):
            wait_for(f"job {step.job} to complete", lambda: self._job_done(ns, step.job), step.timeout_s)
        elif isinstance(step, s.SleepStep):
            time.sleep(step.seconds)
        else:  # pragma: no cover - the schema's union is closed
            raise StepError(f"unknown step {step!r}")

    def _create_job(self, ns: str, step: s.CreateJobStep) -> None:
        """kubectl create job NAME --from=cronjob/CRONJOB: the CronJob's current jobTemplate, owned by it."""
        cj = self.kube.get("CronJob", ns, step.cronjob)
        if cj is None:
            raise StepError(f"cronjob {step.cronjob} does not exist")
        tpl = (cj.get("spec") or {}).get("jobTemplate") or {}
        tmeta = tpl.get("metadata") or {}
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": step.name,
                "namespace": ns,
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": {**(tmeta.get("annotations") or {}), "cronjob.kubernetes.io/instantiate": "manual"},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": step.cronjob,
                        "uid": cj["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": tpl.get("spec") or {},
        }
        self.kube.create(job)

    def _job_done(self, ns: str, name: str) -> bool:
        job = self.kube.get("Job", ns, name)
        if job is None:
            raise StepError(f"job {name} does not exist")
        conds = {
            c.get("type"): c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"
        }
        if "Failed" in conds:
            raise StepError(f"job {name} failed: {conds['Failed'].get('reason')}")
        return "Complete" in conds

    def _pod_for(self, ns: str, selector: dict[str, str]) -> str:
        def running() -> str | None:
            for p in self.pods(ns, selector):
                if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
                    return str(p["metadata"]["name"])
            return None

        return str(wait_for(f"a Running pod with labels {selector}", running, 30))

    def _stop(self, ns: str, deployments: list[str]) -> dict[str, int]:
        """Scale ``deployments`` to 0 and wait until their pods are gone; their replicas before."""
        replicas: dict[str, int] = {}
        selectors: list[dict[str, str]] = []
        for name in deployments:
            d = self.kube.get("Deployment", ns, name)
            if d is None:
                raise StepError(f"deployment {name} does not exist")
            replicas[name] = int((d.get("spec") or {}).get("replicas", 1))
            selectors.append(((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
            self.kube.patch("Deployment", ns, name, {"spec": {"replicas": 0}}, "merge")
        wait_for(
            f"the pods of {deployments} to be gone",
            lambda: not any(self.pods(ns, sel) for sel in selectors),
            60 * max(self.time_scale, 0.2),
        )
        return replicas

    def _rolled_out(self, ns: str, name: str) -> bool:
        d = self.kube.get("Deployment", ns, name)
        if d is None:
            return False
        spec, st = d.get("spec") or {}, d.get("status") or {}
        want = int(spec.get("replicas", 1))
        if int(st.get("observedGeneration", 0)) < int(d["metadata"].get("generation", 0)):
            return False
        if (st.get("updatedReplicas") or 0) != want or (st.get("availableReplicas") or 0) != want:
            return False
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        pods = [p for p in self.pods(ns, selector)]
        return len(pods) == want and all(not p["metadata"].get("deletionTimestamp") for p in pods)

    def _replace(self, app: AppSpec, step: s.ReplaceStep) -> None:
        ns = self._ns(app, step.namespace)
        current = self.kube.get(step.kind, ns, step.name)
        if current is None:
            raise StepError(f"{step.kind}/{step.name} not found in {ns}")
        obj = _clean(current)
        for op in step.json_patch:
            _json_patch(obj, op)
        self.kube.delete(step.kind, ns, step.name)
        wait_for(f"{step.kind}/{step.name} to be deleted", lambda: self.kube.get(step.kind, ns, step.name) is None, 30)
        self.kube.create(obj)

    def _restore(self, app: AppSpec, step: s.RestoreStep) -> None:
        doc = next(
            (d for d in app.manifests() if d["kind"] == step.kind and d["metadata"]["name"] == step.name),
            None,
        )
        if doc is None:
            raise StepError(f"{step.kind}/{step.name} is not in the manifests of {app.name}")
        ns = None if step.kind in CLUSTER_KINDS else app.namespace
        current = self.kube.get(step.kind, ns, step.name)
        if current is None:
            self.kube.create(doc)
            return
        obj = copy.deepcopy(doc)
        obj["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        self.kube.replace(obj)

    def _chaos(self, app: AppSpec, step: s.ChaosStep) -> None:
        ns = app.namespace
        pods = sorted(
            (p for p in self.pods(ns, step.selector) if not p["metadata"].get("deletionTimestamp")),
            key=lambda p: p["metadata"]["name"],
        )
        if not pods:
            raise StepError(f"chaos {step.name}: no pod matches {step.selector} in {ns}")
        chosen = pods[:1] if step.mode == "one" else pods
        spec = ChaosSpec(
            action=step.chaos,
            targets=[ChaosTarget(namespace=ns, name=p["metadata"]["name"]) for p in chosen],
            container_names=step.container_names,
            loss=step.loss,
            latency_ms=step.latency_ms,
            duration_s=step.duration_s,
        )
        ensure_namespace(self.kube, CHAOS_NAMESPACE)
        self.kube.delete("ConfigMap", CHAOS_NAMESPACE, step.name)
        self.kube.create(chaos_configmap(step.name, spec))

    # -- symptoms ----------------------------------------------------------------------------------------------
    def symptoms(self, scenario: s.Scenario) -> list[SymptomResult]:
        scenario = self.resolved(scenario)
        return [self.symptom(scenario, sym) for sym in scenario.symptoms]

    def symptom(self, scenario: s.Scenario, sym: Any) -> SymptomResult:
        app = APPS[scenario.app]
        ns = app.namespace
        live = [p for p in self.pods(ns, getattr(sym, "selector", None)) if not p["metadata"].get("deletionTimestamp")]
        if isinstance(sym, s.WaitingReasonSymptom):
            seen = [_reasons(p) for p in live]
            hit = any(r in sym.reasons for rs in seen for r in rs)
            return SymptomResult(sym.check, hit, f"reasons {seen}")
        if isinstance(sym, s.PodPhaseSymptom):
            phases = [(p.get("status") or {}).get("phase") for p in live]
            return SymptomResult(sym.check, sym.phase in phases, f"phases {phases}")
        if isinstance(sym, s.NoPodsSymptom):
            return SymptomResult(sym.check, not live, f"{len(live)} pods")
        if isinstance(sym, s.NotReadySymptom):
            ready = [_pod_ready(p) for p in live]
            return SymptomResult(sym.check, bool(live) and not all(ready), f"ready {ready}")
        if isinstance(sym, s.ReadySymptom):
            ready = [_pod_ready(p) for p in live]
            return SymptomResult(sym.check, bool(live) and all(ready), f"ready {ready}")
        if isinstance(sym, s.RestartsSymptom):
            counts = [
                cs.get("restartCount", 0) for p in live for cs in (p.get("status") or {}).get("containerStatuses") or []
            ]
            return SymptomResult(sym.check, any(c >= sym.min for c in counts), f"restarts {counts}")
        if isinstance(sym, s.LogSymptom):
            for p in live:
                text = self.kube.logs(ns, p["metadata"]["name"], sym.container)
                if sym.previous:
                    text += self.kube.logs(ns, p["metadata"]["name"], sym.container, previous=True)
                if sym.contains in text:
                    return SymptomResult(sym.check, True, f"found in {p['metadata']['name']}")
            return SymptomResult(sym.check, False, f"{sym.contains!r} not in the logs of {len(live)} pods")
        if isinstance(sym, s.EventSymptom):
            events = self.kube.list("Event", ns)
            hit = any(
                e.get("reason") == sym.reason and sym.message_contains in (e.get("message") or "") for e in events
            )
            return SymptomResult(sym.check, hit, f"{len(events)} events")
        if isinstance(sym, s.PvcPhaseSymptom):
            pvc = self.kube.get("PersistentVolumeClaim", ns, sym.name)
            phase = ((pvc or {}).get("status") or {}).get("phase")
            return SymptomResult(sym.check, phase == sym.phase, f"phase {phase}")
        if isinstance(sym, s.WorkloadSymptom):
            report = self._plane().workload(ns, scenario.workload)
            ratio = (report.non_2xx + report.socket_errors) / max(1, report.requests)
            hit = ratio >= sym.min_error_ratio and report.latency.p99_ms >= sym.min_p99_ms
            return SymptomResult(sym.check, hit and (sym.min_error_ratio > 0 or sym.min_p99_ms > 0), report.text())
        if isinstance(sym, s.ErrorSpanSymptom):
            traces = self._plane().traces(sym.service, error="true")
            return SymptomResult(sym.check, bool(traces), f"{len(traces)} traces with error spans")
        if isinstance(sym, s.RequestSymptom):
            results = [self._plane().request(ns, sym.method, sym.path) for _ in range(sym.count)]
            errors = sum(1 for r in results if not 200 <= r["status"] < 300)
            lat = sorted(r["latency_ms"] for r in results)[len(results) // 2]
            hit = errors / len(results) >= sym.min_error_ratio and lat >= sym.min_latency_ms
            return SymptomResult(sym.check, hit, f"{errors}/{len(results)} failed, median {lat:.1f} ms")
        if isinstance(sym, s.HealthySymptom):
            report = self._plane().workload(ns, scenario.workload)
            reasons = every_pod_ready(self.pods(ns))
            return SymptomResult(sym.check, not reasons and report.clean, "; ".join(reasons) or report.text())
        if isinstance(sym, s.FieldSymptom):
            why = self._field(app, sym.field)
            return SymptomResult(sym.check, why is None, why or "holds")
        raise StepError(f"unknown symptom {sym!r}")  # pragma: no cover

    def wait_symptoms(self, scenario: s.Scenario, timeout: float) -> list[SymptomResult]:
        last: list[SymptomResult] = []

        def all_present() -> bool:
            nonlocal last
            last = self.symptoms(scenario)
            return all(r.present for r in last)

        try:
            wait_for(f"the symptoms of {scenario.family}", all_present, timeout, interval=0.25)
        except TimeoutError:
            pass
        return last

    # -- oracles -----------------------------------------------------------------------------------------------
    def _field(self, app: AppSpec, check: s.FieldCheck) -> str | None:
        ns = None if check.kind in CLUSTER_KINDS else (check.namespace or app.namespace)
        return field_check(check, self.kube.get(check.kind, ns, check.name))

    def check(self, scenario: s.Scenario, mode: Mode = "strict", pid: str | None = None) -> Verdict:
        app = APPS[scenario.app]
        ns = app.namespace
        scenario = self.resolved(scenario)
        oracle = scenario.oracle
        pid = pid or scenario.ids()[-1]
        if oracle is None:
            return Verdict(scenario=pid, mode=mode, passed=False, reasons=["this scenario has no mitigation oracle"])
        reasons: list[str] = []
        notes: list[str] = []
        pods = self.pods(ns)
        if oracle.all_ready in ("guarded", "unguarded"):
            reasons += all_ready(pods, guarded=oracle.all_ready == "guarded")
            notes.append(f"ALL_READY ({oracle.all_ready}) over {len(pods)} pods")
        elif oracle.all_ready == "wait_for_ready":
            budget = oracle.wait_for_ready_s * self.time_scale
            try:
                wait_for(f"every pod in {ns} Ready", lambda: pods_all_ready(self.pods(ns)), budget, interval=0.25)
                notes.append(f"wait_for_ready within {budget:.1f}s")
            except TimeoutError:
                reasons.append(f"not every pod became Ready within {budget:.1f}s (max_wait {oracle.wait_for_ready_s}s)")
                reasons += every_pod_ready(self.pods(ns))
        for c in oracle.checks:
            why = self._field(app, c)
            notes.append(f"{c.kind}/{c.name} {c.path}")
            if why:
                reasons.append(why)
        if oracle.pod_exists and not any(oracle.pod_exists in p["metadata"]["name"] for p in pods):
            reasons.append(f"no pod named *{oracle.pod_exists}*")
        if mode == "strict":
            reasons += [f"strict: {r}" for r in every_pod_ready(pods)]
            for c in oracle.restored:
                why = self._field(app, c)
                notes.append(f"restored {c.kind}/{c.name} {c.path}")
                if why:
                    reasons.append(f"strict: not restored: {why}")
            for e in oracle.restored_exec:
                try:
                    pod = self._pod_for(ns, e.selector)
                    out, err, _ = self.kube.exec(ns, pod, e.command, e.container)
                except (TimeoutError, KubeError) as ex:
                    reasons.append(f"strict: cannot run {e.command[0]} in {e.selector}: {ex}")
                    continue
                if e.stdout_contains not in out:
                    reasons.append(
                        f"strict: not restored: {e.stdout_contains!r} not in the output of "
                        f"{e.command[0]} in {pod}: {(out + err).strip()[-300:]}"
                    )
            if not reasons:
                report = self._plane().workload(ns, oracle.workload)
                notes.append(f"post-fix workload: {report.text()}")
                if not report.clean:
                    reasons.append(f"strict: the post-fix workload failed: {report.text()}; errors {report.errors}")
            if not reasons and oracle.durability:
                reasons += self._durability(scenario, oracle, notes)
        return Verdict(scenario=pid, mode=mode, passed=not reasons, reasons=reasons, notes=notes)

    def _durability(self, scenario: s.Scenario, oracle: s.Oracle, notes: list[str]) -> list[str]:
        ns = APPS[scenario.app].namespace
        try:
            self.run_steps(scenario, oracle.durability)
        except StepError as e:
            return [f"strict: durability: {e}"]
        time.sleep(0.5)  # let the controllers start the replacements before waiting on them
        try:
            took = self.wait_ready(ns, oracle.durability_s)
        except TimeoutError:
            return [f"strict: durability: not every pod Ready again within {oracle.durability_s:.0f}s"] + [
                f"strict: durability: {r}" for r in every_pod_ready(self.pods(ns))
            ]
        report = self._plane().workload(ns, oracle.workload)
        notes.append(f"durability: Ready again in {took:.1f}s; workload {report.text()}")
        if not report.clean:
            return [f"strict: durability: the workload failed after the replacement: {report.text()}"]
        return []

    def wait_check(self, scenario: s.Scenario, mode: Mode, timeout: float) -> Verdict:
        last: Verdict | None = None

        def passes() -> bool:
            nonlocal last
            last = self.check(scenario, mode)
            return last.passed

        try:
            wait_for(f"the {mode} oracle to pass", passes, timeout, interval=0.5)
        except TimeoutError:
            pass
        assert last is not None
        return last


def _binding_key(scenario: s.Scenario) -> str:
    return re.sub(r"[^-._a-zA-Z0-9]", "_", scenario.ids()[-1])


_PLACEHOLDER = re.compile(r"\$\{([a-z][a-z0-9_]*)\}")


def _substitute(value: Any, values: dict[str, str]) -> Any:
    """Every ``${name}`` in the strings (and mapping keys) of ``value`` replaced; unknown names are left alone."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, values): _substitute(v, values) for k, v in value.items()}
    return value


def _pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _reasons(pod: Obj) -> list[str]:
    out = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        for key in ("state", "lastState"):
            st = cs.get(key) or {}
            for phase in ("waiting", "terminated"):
                if st.get(phase) and st[phase].get("reason"):
                    out.append(str(st[phase]["reason"]))
    return out


def _clean(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out.pop("status", None)
    m = out.get("metadata") or {}
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink"):
        m.pop(key, None)
    (m.get("annotations") or {}).pop("deployment.kubernetes.io/revision", None)
    return out


def _json_patch(doc: Any, op: s.JsonPatchOp) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op.path.lstrip("/").split("/")]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
    last = parts[-1]
    if op.op in ("add", "replace"):
        if isinstance(parent, list):
            if last == "-":
                parent.append(op.value)
            elif op.op == "add":
                parent.insert(int(last), op.value)
            else:
                parent[int(last)] = op.value
        else:
            parent[last] = op.value
    elif op.op == "remove":
        if isinstance(parent, list):
            parent.pop(int(last))
        else:
            parent.pop(last, None)
    else:
        raise StepError(f"json_patch op {op.op} is not supported in replace steps")
