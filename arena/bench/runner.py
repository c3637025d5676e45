"""The bench loop: one arena, one NATS and one Redis for the whole run; one set of services per app and policy.

Why the services are reused across scenarios, and when they are not: starting six Python processes costs 20-30 s on
the 2-core machine, more than a whole incident, so the services keep running from one scenario of an app to the next
(scenarios are ordered by app). That is safe only while the control plane holds nothing of the last scenario, so
they are restarted, with a fresh ``STRATUS_REDIS_PREFIX``, whenever (a) the app, policy, ablation or scripted plan
changes, or (b) an incident of the last scenario is still open (the time limit hit, or a detection/localization task
that stops at the event it needs). Escalation cool-downs are off (``STRATUS_ESCALATION_COOLDOWN_S=0``), and the
timeline keeps only incidents opened on the scope after the injection. While the bench itself recovers or redeploys
the app, the detector is paused (SIGSTOP) so the bench's own churn opens no incident; it continues (SIGCONT) just
before the next injection, with the app healthy again.

Per scenario: make the app healthy (deploy if missing, every pod Ready, a clean workload; a full redeploy if recovery
left it broken) -> the services watching its namespace -> inject -> wait for the event the task needs
(incident_closed for mitigation, incident_opened for detection, the diagnosis for localization/RCA) or the time
limit -> pause the detector -> judge with the scenario's oracle -> recover. The diagnoser reasons with the rulebook
or the LLM; ``--policy`` chooses the mitigator (scripted and chaos are mitigation policies only).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import math
import multiprocessing
import shlex
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from arena.apps import APPS, AppSpec
from arena.bench.detection_terms import (
    latency_enabled,
    slo_query_env,
    start_slo_prometheus,
    wait_last_good,
    wait_latency,
)
from arena.bench.embedding.system import embedding_env, embedding_warmup_s, start_embedding_prometheus
from arena.bench.llm_log import LogSlice
from arena.bench.noise import NoiseGenerator, NoiseSpec, blamed, fault_names, wrong_attribution
from arena.bench.probes import ProbeGateway
from arena.bench.record import AttemptRecord, BenchRecord, ScenarioRecord
from arena.bench.timeline import Timeline
from arena.scenarios import oracles
from arena.scenarios import schema as s
from arena.scenarios.engine import CATALOGUE_DIR, SREGYM_DIR, Engine, PlaneClient, Registry, StepError, wait_for
from arena.scenarios.kube import Kube
from arena.telemetry.plane import AppsArena
from arena.timing import Timing
from arena.workload.generator import WorkloadSpec
from stratus.bus import Bus
from stratus.contracts import SERVICES
from stratus.localinfra import LocalServer, free_port, start_nats, start_redis
from stratus.supervisor import Supervisor, wait_healthy

SUITES: dict[str, str] = {
    "aiopslab-mitigation": "mitigation",
    "detection": "detection",
    "localisation": "localization",
    "rca": "analysis",
    "chaos": "mitigation",
    "sregym": "mitigation",
}
POLICIES = ("rulebook", "llm", "hybrid", "chaos", "scripted")
ABLATIONS = ("none", "no-retry", "naive-retry")

FAST: dict[str, str] = {
    "STRATUS_PROBE_INTERVAL_S": "0.5",
    "STRATUS_CONFIRM_PROBES": "2",
    "STRATUS_SETTLE_S": "2",
    # the app is healthy before each fault (checked): recorded at once, as a long-running deployment has it; what a
    # workload ran while healthy counts as run before (writepolicy.recorded_programs: wrong_bin_usage's fix)
    "STRATUS_LASTGOOD_SETTLE_S": "0",
    "STRATUS_LEASE_TTL_S": "6",
    "STRATUS_SLO_MAX_LATENCY_S": "2",
    "STRATUS_ESCALATION_COOLDOWN_S": "0",
    "STRATUS_STARTUP_GRACE_S": "5",
    "STRATUS_LOG_LEVEL": "INFO",
}
"""Tight timings for the arena's Timing.fast() (the arena's controllers converge in well under a second)."""

TIME_SCALE = 0.1
"""Scenario waits (e.g. wait_for_ready's 60 s) are compressed by this factor, as in the arena's own tests."""


@dataclass
class BenchOptions:
    suite: str
    policies: list[str]
    ablations: list[str] = field(default_factory=lambda: ["none"])
    repeat: int = 1
    oracle: str = "strict"
    scenarios_dir: Path | None = None
    only: list[str] = field(default_factory=list)
    out: Path = Path("bench-out")
    timeout_s: float = 150.0
    noop_window_s: float = 12.0
    drain_s: float = 30.0
    chaos_transactions: int = 100
    plan: Path | None = None
    script: str = "fix"
    command: str = ""
    env: dict[str, str] = field(default_factory=dict)
    embedding: bool = False
    """Run the detector and the diagnoser with the state embedding (a real Prometheus scrapes the arena for it)."""
    llm_log: Path | None = None
    """The local llama.cpp server's log: where each scenario's model time went (reading vs generating)."""
    noise: NoiseSpec | None = None
    """Benign changes during each scenario (``arena.bench.noise``): false positives and wrong attributions count."""
    jobs: int = 1
    """Scenarios run by this many worker processes, each with its own arena, NATS, Redis and services."""
    slo_queries: bool = False
    """Operator SLO queries: a real Prometheus scrapes the app plane, and the services get its URL and the queries
    (``STRATUS_SLO_QUERIES`` from ``env``, else the examples). Also on when ``env`` has queries but no Prometheus
    URL."""

    @property
    def slo_prometheus(self) -> bool:
        """Whether the bench starts a Prometheus for the SLO queries (``--slo-queries``, or queries without a URL)."""
        return self.slo_queries or ("STRATUS_SLO_QUERIES" in self.env and "STRATUS_PROMETHEUS_URL" not in self.env)

    def record_settings(self) -> dict[str, str]:
        """The bench's own settings as its record shows them (servers it starts as placeholders)."""
        return {
            **FAST,
            **(embedding_env("<prometheus>", "<plane>") if self.embedding else {}),
            **(slo_query_env("<prometheus>", self.env.get("STRATUS_SLO_QUERIES")) if self.slo_prometheus else {}),
        }


def select(registry: Registry, suite: str, only: list[str]) -> list[str]:
    task = SUITES[suite]
    ids = [pid for pid in registry.ids() if registry.get(pid)[1] == task]
    if only:
        ids = [pid for pid in ids if any(o in pid for o in only)]
    return sorted(ids, key=lambda pid: (registry.get(pid)[0].app, pid))  # one set of services per app


HARMFUL_IMAGE = "stratus-bench/does-not-exist:0"
"""The image of the harmful-then-fix policy's first write."""


PodsOf = Callable[..., list[str]]
"""The names of the live pods (or, with a second argument, objects of that kind) with these labels in the app's
namespace (known once the fault is injected)."""


def scripted_plan(
    scenario: s.Scenario, app: AppSpec, script: str = "fix", pods_of: PodsOf | None = None
) -> dict[str, Any]:
    """The scenario's documented mitigation as kubectl lines and typed actions: a reference policy that measures the
    system around the reasoner. Every write step kind is carried (patch, scale, set_image, rollout_restart, delete,
    apply, restore and replace as typed actions; exec as its data-plane catalogue operation); waits (the mitigator's
    verification waits) are left out. The fix is planned twice: when attempt 1 is refused because a write needs a
    wider lease (e.g. a Node, a PersistentVolume), the coordinator gives attempt 2 that lease and the same fix runs
    again. ``harmful-then-fix`` puts a harmful attempt first (a rollout of the app's front end to a missing image):
    the ablations' probe, since only a failed attempt shows what retry and undo are worth. Steps on the objects of
    the moment need ``pods_of`` (the bench rewrites the plan once the fault is in): delete_pods and delete_all on
    the objects then live, and exec steps that name their catalogue operation (``op``) as a typed exec on the pod
    the selector picks; an exec step with only an argv is never carried (see ``_plan_pod_step``)."""
    namespace = app.namespace
    lines: list[Any] = []
    for step in scenario.mitigation:
        lines += _plan_step(step, app)
        if pods_of is not None:
            lines += _plan_pod_step(step, scenario, app, pods_of)
    if script == "harmful-then-fix":
        # A rollout of the front end to an image that does not exist: permitted (the rolling update keeps the Ready
        # pod), visibly harmful (a failing pod) and undoable. Scaling it to zero would be refused by the gateway's
        # ready-capacity rule, since no undo restarts a process that may not start again.
        broken = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": HARMFUL_IMAGE}]
        harm = (
            f"kubectl -n {namespace} patch deployment {app.frontend} --type=json -p {shlex.quote(json.dumps(broken))}"
        )
        return {"attempts": [[harm], lines, lines]}
    return {"attempts": [lines, lines]}


def _plan_pod_step(step: Any, scenario: s.Scenario, app: AppSpec, pods_of: PodsOf) -> list[Any]:
    ns = app.namespace
    if isinstance(step, s.DeletePodsStep):
        names = pods_of(step.selector or {})
        if step.name_prefix:
            names = [n for n in names if n.startswith(step.name_prefix)]
        return [{"verb": "delete", "kind": "Pod", "namespace": ns, "name": n} for n in names]
    if isinstance(step, s.DeleteAllStep):
        # kubectl delete KIND -l SELECTOR, as one delete per object of the moment (writes on selectors are refused)
        return [
            {"verb": "delete", "kind": step.kind, "namespace": ns, "name": n} for n in pods_of(step.selector, step.kind)
        ]
    if isinstance(step, s.ExecStep) and step.op is not None:
        # The gateway runs no free argv, only the data-plane catalogue's operations: the step's typed operation, on
        # the pod its selector picks now (the engine's choice: the first Running one).
        pod = pods_of(step.selector)[:1]
        op = {"operation": step.op.operation, "args": step.op.args}
        container = {"container": step.container} if step.container else {}
        return [{"verb": "exec", "kind": "Pod", "namespace": ns, "name": n, **container, **op} for n in pod]
    # An exec step without a typed operation is free argv, which the gateway never runs: the plan's other steps run.
    return []


_CLUSTER_KINDS = (
    "PersistentVolume",
    "Node",
    "Namespace",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)


def _plan_step(step: Any, app: AppSpec) -> list[Any]:
    namespace = app.namespace

    def ns_of(kind: str, ns: str | None) -> str | None:
        return None if kind in _CLUSTER_KINDS else (ns or namespace)

    if isinstance(step, s.ScaleStep):
        return [f"kubectl -n {namespace} scale deployment {step.deployment} --replicas={step.replicas}"]
    if isinstance(step, s.SetImageStep):
        return [f"kubectl -n {namespace} set image deployment/{step.deployment} {step.container}={step.image}"]
    if isinstance(step, s.RolloutRestartStep):
        return [f"kubectl -n {namespace} rollout restart deployment {step.deployment}"]
    if isinstance(step, s.PatchStep):
        ns = ns_of(step.kind, step.namespace)
        flag = f"-n {ns} " if ns else ""
        body = shlex.quote(json.dumps(step.patch))
        return [f"kubectl {flag}patch {step.kind.lower()} {step.name} --type={step.patch_type} -p {body}"]
    if isinstance(step, s.DeleteStep):
        return [{"verb": "delete", "kind": step.kind, "namespace": ns_of(step.kind, step.namespace), "name": step.name}]
    if isinstance(step, s.ApplyStep):
        m = step.manifest
        kind, meta = str(m.get("kind")), m.get("metadata") or {}
        ns = ns_of(kind, meta.get("namespace"))
        manifest = {**m, "metadata": {**meta, "namespace": ns}} if ns else m
        return [
            {"verb": "apply", "kind": kind, "namespace": ns, "name": meta.get("name"), "params": {"manifest": manifest}}
        ]
    if isinstance(step, s.RestoreStep):
        doc = next((d for d in app.manifests() if d["kind"] == step.kind and d["metadata"]["name"] == step.name), None)
        if doc is None:
            return []
        ns = ns_of(step.kind, None)
        return [{"verb": "replace", "kind": step.kind, "namespace": ns, "name": step.name, "params": {"manifest": doc}}]
    if isinstance(step, s.ReplaceStep):
        # delete-and-recreate with a JSON patch: the same end state as patching the live object
        ops = [op.model_dump(by_alias=True, exclude_none=True) for op in step.json_patch]
        body = shlex.quote(json.dumps(ops))
        return [f"kubectl -n {step.namespace or namespace} patch {step.kind.lower()} {step.name} --type=json -p {body}"]
    return []


def _new_record(opts: BenchOptions) -> BenchRecord:
    """The run's record, before any scenario: what ran, with which settings."""
    return BenchRecord(
        suite=opts.suite,
        command=opts.command,
        started=datetime.now(UTC),
        oracle=opts.oracle,
        settings=opts.record_settings(),
        noise=dataclasses.asdict(opts.noise) if opts.noise is not None else None,
    )


class Claims:
    """Which worker of a ``--jobs`` run takes which scenario: a file of claimed keys under a lock shared by the
    workers. A worker takes the next unclaimed scenario of the app it ran last (its services stay), else the first
    unclaimed one, so the slow scenarios (a time limit reached) spread over the workers instead of one shard."""

    def __init__(self, path: Path, lock: Any) -> None:
        self.path, self.lock = path, lock

    def take(
        self, worker: int, prefix: str, ids: list[str], app_of: Callable[[str], str], prefer: str | None
    ) -> str | None:
        with self.lock:
            lines = self.path.read_text().splitlines() if self.path.exists() else []
            taken = {line.split(" ", 1)[1] for line in lines if " " in line}
            free = [pid for pid in ids if prefix + pid not in taken]
            if not free:
                return None
            pick = next((pid for pid in free if app_of(pid) == prefer), free[0])
            with self.path.open("a") as f:
                f.write(f"{worker} {prefix}{pick}\n")
            return pick


def _run_worker(opts: BenchOptions, k: int, claims: Claims, prefer: str | None) -> None:
    """One worker of a ``--jobs`` run, in its own process: its record goes to ``opts.out/bench.json``."""

    def echo(line: str) -> None:
        sys.stdout.write(f"{datetime.now(UTC):%H:%M:%S} [{k}] {line}\n")
        sys.stdout.flush()

    bench = Bench(opts, echo)
    bench.claims, bench.worker, bench.prefer = claims, k, prefer
    record = bench.run()
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "bench.json").write_text(record.model_dump_json(indent=2))


def _write_atomic(path: Path, doc: Any) -> None:
    """Write YAML so that a reader never sees half a file (the mitigator may read the plan at any moment)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc))
    tmp.replace(path)


def _mu(v: Any) -> float:
    if v is None:
        return math.inf
    return float(v)


def _ts(e: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(e["ts"])


def judge_noise(rec: ScenarioRecord, sc: s.Scenario, timeline: Timeline) -> None:
    """With noise: a run without a fault that opened an incident is a false positive; a diagnosis that blames a
    change only the noise made is a wrong attribution."""
    if not sc.ground_truth.detection:
        rec.false_positive = bool(timeline.of("incident_opened"))
    diagnoses = timeline.of("diagnosis")
    if diagnoses:
        rec.blamed = blamed(diagnoses[0])
    if diagnoses and sc.ground_truth.detection:
        rec.wrong_attribution = wrong_attribution(diagnoses[0], rec.noise, fault_names(sc))


def _write_timeline(path: Path, events: list[dict[str, Any]]) -> str | None:
    if not events:
        return None
    path.write_text("".join(json.dumps(e, sort_keys=True, default=str) + "\n" for e in events))
    return path.name


def build_record(rec: ScenarioRecord, timeline: Timeline, t_inject: datetime) -> None:
    """Fill the incident part of ``rec`` from the events of its (first) incident."""
    opened = timeline.of("incident_opened")
    if not opened:
        return
    first = opened[0]
    iid = first["incident_id"]
    events = [e for e in timeline.events if e.get("incident_id") == iid]

    def of(kind: str) -> list[dict[str, Any]]:
        return [e for e in events if e["kind"] == kind]

    rec.detected, rec.incident_id = True, iid
    rec.baseline = _mu(first.get("baseline"))
    rec.ttd_s = round((_ts(first) - t_inject).total_seconds(), 2)
    attempts: dict[int, AttemptRecord] = {}

    def att(n: int) -> AttemptRecord:
        return attempts.setdefault(n, AttemptRecord(n=n))

    digests: dict[int, str] = {}
    for e in of("checkpointed"):
        att(e["attempt"]).mu_pre = _mu(e["severity"]["mu"])
        digests[e["attempt"]] = e["digest"]
    for e in of("action_executed"):
        a = e["action"]
        att(e["attempt"]).actions.append(f"{a.get('verb')} {a.get('kind') or ''}/{a.get('name') or ''}".strip())
        if e.get("mu_after") is not None:
            att(e["attempt"]).hidden_mu.append(_mu(e["mu_after"]))
    for e in of("transaction_ended"):
        a = att(e["attempt"])
        if e.get("hidden_mu") and len(e["hidden_mu"]) >= len(a.hidden_mu):
            a.hidden_mu = [_mu(m) for m in e["hidden_mu"]]
        u = e.get("usage") or {}
        rec.prompt_tokens += int(u.get("prompt_tokens", 0))
        rec.completion_tokens += int(u.get("completion_tokens", 0))
        rec.cost_usd += float(u.get("cost_usd", 0.0))
        rec.tool_calls += int(u.get("steps", 0))
        rec.llm_errors += int(u.get("llm_errors", 0))
        rec.max_prompt_tokens = max(rec.max_prompt_tokens, int(u.get("max_prompt_tokens", 0)))
    for e in of("transaction_decided"):
        a = att(e["attempt"])
        a.decision, a.mu_pre, a.mu_post = e["decision"], _mu(e["mu_pre"]), _mu(e["mu_post"])
    for e in of("undo_completed"):
        a = att(e["attempt"])
        a.undo_divergences = len(e.get("divergences") or [])
        a.digest_restored = e.get("restored_digest") == digests.get(e["attempt"])
        rec.undo_divergences += a.undo_divergences
        rec.digest_mismatches += 0 if a.digest_restored else 1
    for e in of("diagnosis"):
        u = e.get("usage") or {}
        rec.prompt_tokens += int(u.get("prompt_tokens", 0))
        rec.completion_tokens += int(u.get("completion_tokens", 0))
        rec.cost_usd += float(u.get("cost_usd", 0.0))
        rec.tool_calls += int(u.get("steps", 0))
        rec.llm_errors += int(u.get("llm_errors", 0))
        rec.max_prompt_tokens = max(rec.max_prompt_tokens, int(u.get("max_prompt_tokens", 0)))
    rec.attempts = [attempts[n] for n in sorted(attempts)]
    rec.actions = sum(len(a.actions) for a in rec.attempts)
    closed = of("incident_closed")
    if closed:
        c = closed[0]
        rec.outcome = c["outcome"]
        rec.visible_mu = [_mu(m) for m in c.get("visible_mu") or []]
        if c.get("baseline") is not None:  # b as the coordinator set it at the first checkpoint
            rec.baseline = _mu(c["baseline"])
        if c["outcome"] == "resolved":
            rec.ttm_s = round((_ts(c) - t_inject).total_seconds(), 2)
    else:  # the time limit: what became visible so far is the decisions' commits and the undos' restores
        rec.visible_mu = [a.mu_post for a in rec.attempts if a.decision == "commit" and a.mu_post is not None]
    rec.tnr_held = all(m <= rec.baseline for m in rec.visible_mu)
    rec.drift = not rec.tnr_held and all(
        a.decision != "commit" and (not a.actions or a.digest_restored) for a in rec.attempts
    )
    rec.cost_usd = round(rec.cost_usd, 6)


@dataclass
class _System:
    """The six services of one configuration, kept across scenarios while no incident is left open."""

    key: tuple[str, ...]
    prefix: str
    log: Path
    sups: list[Supervisor] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, opts: BenchOptions, echo: Callable[[str], None] = lambda line: None) -> None:
        self.opts = opts
        self.echo = echo
        if opts.scenarios_dir:
            self.registry = Registry([opts.scenarios_dir])
        elif opts.suite == "sregym":
            self.registry = Registry([SREGYM_DIR])
        else:  # the AIOpsLab suites: the catalogue's top level
            self.registry = Registry([CATALOGUE_DIR], recursive=False)
        self.log_dir = opts.out / "logs"
        self.system: _System | None = None
        self.systems_started = 0
        self.ids: list[str] = []
        self.prometheus: LocalServer | None = None
        self.slo_prometheus: LocalServer | None = None  # the SLO queries' Prometheus (--slo-queries)
        self.claims: Claims | None = None  # a --jobs worker: the scenarios it runs are claimed one at a time
        self.worker: int = 0
        self.prefer: str | None = None

    # -- the run -------------------------------------------------------------------------------------------------
    def run(self) -> BenchRecord:
        if self.opts.jobs > 1:
            return self._run_shards()
        return asyncio.run(self._run())

    def _run_shards(self) -> BenchRecord:
        """``jobs`` worker processes, each with its own arena, NATS, Redis and services on its own ports, taking
        scenarios from a shared claim file (``Claims``); the records are merged in the selection's order. A scenario
        no worker recorded (its worker died) gets an error record."""
        opts = self.opts
        if opts.suite == "chaos":
            raise ValueError("the chaos suite counts transactions across rounds: it runs with --jobs 1")
        ids = select(self.registry, opts.suite, opts.only)
        if not ids:
            raise ValueError(f"no {SUITES[opts.suite]} scenario in the suite {opts.suite} (filter {opts.only})")
        jobs = min(opts.jobs, len(ids))
        record = _new_record(opts)
        opts.out.mkdir(parents=True, exist_ok=True)
        ctx = multiprocessing.get_context("spawn")
        claims = Claims(opts.out / "claims.txt", ctx.Lock())
        claims.path.write_text("")
        workers = []
        for k in range(1, jobs + 1):
            worker_opts = dataclasses.replace(opts, jobs=1, out=opts.out / f"worker-{k}")
            prefer = self.registry.get(ids[(k - 1) * len(ids) // jobs])[0].app  # workers start on different apps
            proc = ctx.Process(target=_run_worker, args=(worker_opts, k, claims, prefer), name=f"bench-worker-{k}")
            proc.start()
            workers.append((k, worker_opts, proc))
        runs: list[ScenarioRecord] = []
        for k, worker_opts, proc in workers:
            proc.join()
            out = worker_opts.out / "bench.json"
            if proc.exitcode != 0 or not out.exists():
                self.echo(f"worker {k} exited {proc.exitcode} without its record")
                continue
            for r in BenchRecord.model_validate_json(out.read_text()).runs:
                if r.services_log:
                    r.services_log = f"worker-{k}/logs/{r.services_log}"
                runs.append(r)
        done = {(r.policy, r.ablation, r.repeat, r.scenario) for r in runs}
        for policy in opts.policies:
            for ablation in opts.ablations:
                for rep in range(opts.repeat):
                    for pid in ids:
                        if (policy, ablation, rep, pid) not in done:
                            sc, task = self.registry.get(pid)
                            error = "no worker recorded it (a worker exited early: see its worker-N folder)"
                            runs.append(
                                ScenarioRecord(
                                    scenario=pid,
                                    task=task,
                                    app=sc.app,
                                    policy=policy,
                                    ablation=ablation,
                                    repeat=rep,
                                    error=error,
                                )
                            )
        order = {pid: i for i, pid in enumerate(ids)}
        runs.sort(
            key=lambda r: (opts.policies.index(r.policy), opts.ablations.index(r.ablation), r.repeat, order[r.scenario])
        )
        record.runs = runs
        record.finished = datetime.now(UTC)
        return record

    async def _run(self) -> BenchRecord:
        opts = self.opts
        ids = select(self.registry, opts.suite, opts.only)
        if not ids:
            raise ValueError(f"no {SUITES[opts.suite]} scenario in the suite {opts.suite} (filter {opts.only})")
        record = _new_record(opts)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="stratus-bench-"))
        arena = AppsArena(timing=Timing.fast()).start()
        nats: LocalServer | None = None
        redis: LocalServer | None = None
        probes = ProbeGateway(arena.plane_url).start()
        self.prometheus = start_embedding_prometheus(arena.plane_url) if opts.embedding else None
        self.slo_prometheus = start_slo_prometheus(arena.plane_url) if opts.slo_prometheus else None
        kube = Kube.from_kubeconfig(str(arena.write_kubeconfig(tmp / "kubeconfig")))
        plane = PlaneClient(arena.plane_url)
        self.engine = Engine(kube, plane, time_scale=TIME_SCALE)
        self.kubeconfig, self.probes, self.plane_url = tmp / "kubeconfig", probes, arena.plane_url
        try:
            nats, redis = start_nats(), start_redis()
            self.nats_url, self.redis_url = nats.url, redis.url
            self.bus = await Bus.connect(nats.url, name="bench")
            await self.bus.ensure_streams()
            self.ids = ids
            policies = ["chaos"] if opts.suite == "chaos" else opts.policies
            for policy in policies:
                for ablation in opts.ablations:
                    if opts.suite == "chaos":
                        await self._chaos(record, ids, ablation)
                        continue
                    for rep in range(opts.repeat):
                        for pid in self._order(ids, f"{policy}/{ablation}/{rep}/"):
                            record.runs.append(await self._scenario(pid, policy, ablation, rep))
        finally:
            await self._stop_system()
            record.finished = datetime.now(UTC)
            if getattr(self, "bus", None) is not None:
                await self.bus.close()
            plane.close()
            kube.close()
            probes.stop()
            for server in (nats, redis, self.prometheus, self.slo_prometheus):
                if server is not None:
                    server.stop()
            arena.stop()
        return record

    def _order(self, ids: list[str], prefix: str) -> Iterator[str]:
        """The scenarios this process runs: all of them, or (a ``--jobs`` worker) those it claims one at a time."""
        if self.claims is None:
            yield from ids
            return
        prefer = self.prefer
        app_of = lambda pid: self.registry.get(pid)[0].app  # noqa: E731
        while (pid := self.claims.take(self.worker, prefix, ids, app_of, prefer)) is not None:
            prefer = app_of(pid)
            yield pid

    async def _chaos(self, record: BenchRecord, ids: list[str], ablation: str) -> None:
        """Rounds over the mitigation scenarios with the chaos policy (a new seed each time) until enough
        transactions ran."""
        tried, rnd = 0, 0
        while tried < self.opts.chaos_transactions:
            for pid in ids:
                run = await self._scenario(pid, "chaos", ablation, rnd, seed=rnd * 1000 + len(record.runs))
                record.runs.append(run)
                tried += run.transactions
                self.echo(f"chaos: {tried}/{self.opts.chaos_transactions} transactions")
                if tried >= self.opts.chaos_transactions:
                    return
            rnd += 1

    # -- one scenario -------------------------------------------------------------------------------------------
    def _env(self, app: AppSpec, policy: str, ablation: str, seed: int, plan: Path | None) -> dict[str, str]:
        env = {
            **FAST,
            # incident memory would carry fixes from one scenario to the next: off unless --set turns it on
            "STRATUS_MEMORY_ENABLED": "false",
            **(
                slo_query_env(self.slo_prometheus.url, self.opts.env.get("STRATUS_SLO_QUERIES"))
                if self.slo_prometheus is not None
                else {}
            ),
            **self.opts.env,  # the operator's settings win over the bench's
            "STRATUS_KUBECONFIG": str(self.kubeconfig),
            "STRATUS_SCOPES": json.dumps([app.namespace]),
            "STRATUS_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:10]}",
            "STRATUS_PORT": str(free_port()),
            "STRATUS_POLICY": policy,
            "STRATUS_CHAOS_SEED": str(seed),
            "STRATUS_SLO_PROBES": json.dumps({app.namespace: self.probes.urls(app)}),
            "STRATUS_JAEGER_URL": self.plane_url,
        }
        if plan is not None:
            env["STRATUS_SCRIPTED_PLAN"] = str(plan)
        if self.prometheus is not None:
            env.update(embedding_env(self.prometheus.url, self.plane_url))
        if ablation == "no-retry":
            env["STRATUS_MAX_RETRIES"] = "0"
        elif ablation == "naive-retry":
            env["STRATUS_UNDO_ON_ABORT"] = "false"
        return env

    async def _system(self, key: tuple[str, ...], env: dict[str, str], diag_policy: str) -> _System:
        """The running services for ``key`` (policy, ablation, plan), started when missing or different."""
        if self.system is not None and self.system.key == key:
            return self.system
        await self._stop_system()
        self.systems_started += 1
        system = _System(key, env["STRATUS_REDIS_PREFIX"], self.log_dir / f"services-{self.systems_started}.log")
        echo = system.lines.append
        # scripted and chaos drive the mitigator only; the diagnoser reasons with the LLM when one is configured
        # (STRATUS_DIAGNOSIS_POLICY: the diagnoser's own setting, so the mitigator's STRATUS_POLICY stays)
        system.sups = [
            Supervisor(
                self.nats_url,
                self.redis_url,
                [x for x in SERVICES if x != "diagnoser"],
                env=env,
                echo=echo,
            ),
            Supervisor(
                self.nats_url,
                self.redis_url,
                ["diagnoser"],
                env={**env, "STRATUS_POLICY": diag_policy, "STRATUS_DIAGNOSIS_POLICY": diag_policy},
                echo=echo,
            ),
        ]
        self.system = system
        for sup in system.sups:
            sup.start_services()
        replies = await wait_healthy(self.nats_url, timeout=60)
        if not all(any(r.ok for r in replies.get(x, [])) for x in SERVICES):
            late = [x for x in SERVICES if not any(r.ok for r in replies.get(x, []))]
            raise RuntimeError(f"services not healthy within 60 s: {late} (log {system.log.name})")
        return system

    async def _stop_system(self) -> None:
        self._pause_detector(False)  # a stopped process would hold its SIGTERM until the supervisor's SIGKILL
        system, self.system = self.system, None
        if system is None:
            return
        for sup in system.sups:
            await asyncio.to_thread(sup.stop)
        system.log.write_text("\n".join(system.lines))

    def _pause_detector(self, paused: bool) -> None:
        """SIGSTOP/SIGCONT the detector: while the bench itself recovers or redeploys an app, the churn must not open
        incidents. (A paused detector misses nothing it needs: it probes afresh when it continues.)"""
        if self.system is not None:
            for sup in self.system.sups:
                sup.signal("detector", signal.SIGSTOP if paused else signal.SIGCONT)

    async def _scenario(self, pid: str, policy: str, ablation: str, rep: int, seed: int = 0) -> ScenarioRecord:
        sc, task = self.registry.get(pid)
        app = APPS[sc.app]
        rec = ScenarioRecord(scenario=pid, task=task, app=sc.app, policy=policy, ablation=ablation, repeat=rep)
        t0 = time.monotonic()
        self.echo(f"{pid} [{policy}/{ablation}#{rep}]: preparing {app.namespace}")
        self._pause_detector(True)
        try:
            await asyncio.to_thread(self._healthy, app)
        except Exception as exc:
            rec.error = f"the app did not become healthy before injection: {exc}"
            rec.wall_s = round(time.monotonic() - t0, 2)
            self.echo(f"{pid}: {rec.error}")
            return rec
        plan = self.opts.plan
        try:
            sc = await asyncio.to_thread(self.engine.resolved, sc, True)  # inject-time choices (select)
            await asyncio.to_thread(self.engine.prepare, sc)  # the app as the problem deploys it, before watching
        except StepError as exc:
            rec.error = f"cannot prepare the scenario (its targets, its setup): {exc}"
            rec.wall_s = round(time.monotonic() - t0, 2)
            return rec
        if policy == "scripted" and plan is None:
            # one path for every scenario: the mitigator re-reads the plan at each attempt, so the services of the
            # last scenario stay (starting six processes costs more than most scenarios); a copy per scenario is kept
            plan = self.log_dir / "scripted.plan.yaml"
            _write_atomic(plan, scripted_plan(sc, app, self.opts.script))
        env = self._env(app, policy, ablation, seed, plan)
        key = (app.namespace, policy, ablation, str(plan), str(seed) if policy == "chaos" else "")
        timeline: Timeline | None = None
        noise: NoiseGenerator | None = None
        keep = False
        refresh: asyncio.Task[None] | None = None
        try:
            t_ready = time.monotonic()
            started = self.systems_started
            # each policy diagnoses its own way: the rulebook's runs never ask a configured LLM
            diagnosis = policy if policy in ("llm", "hybrid", "rulebook") else "auto"
            system = await self._system(key, env, diagnosis)
            recorded_since = time.time()
            self._pause_detector(False)
            if self.prometheus is not None:  # the embedding learns the healthy app (again after the pause) first
                await asyncio.sleep(embedding_warmup_s(fresh=self.systems_started != started))
            if latency_enabled(env):  # the latency term judges against the scope's healthy samples: they come first
                await wait_latency(self.bus.js, app.namespace)
            rec.services_log = system.log.name
            # the healthy app's last-known-good record comes before the fault (a fix may restore what it recorded)
            if not await wait_last_good(self.bus.js, app.namespace, recorded_since):
                self.echo(f"{pid}: no last-good record of {app.namespace} before the fault; injecting anyway")
            t_inject = datetime.now(UTC)
            server_log = LogSlice(self.opts.llm_log) if self.opts.llm_log and policy in ("llm", "hybrid") else None
            if server_log is not None:
                server_log.start()
            timeline = await Timeline(self.bus, app.namespace, t_inject).start()
            if self.opts.noise is not None:
                noise = self._noise(app, self.ids.index(pid) + 1000 * rep + 100_000 * seed)
                await asyncio.to_thread(noise.wait_changes, self.opts.noise.before)
            await asyncio.to_thread(self.engine.inject, sc)
            if policy == "scripted" and self.opts.plan is None and plan is not None:
                pods_of = functools.partial(self._pod_names, app.namespace)
                doc = await asyncio.to_thread(scripted_plan, sc, app, self.opts.script, pods_of)
                _write_atomic(plan, doc)  # re-read by the mitigator at each attempt
                if any(isinstance(st, s.DeleteAllStep) for st in sc.mitigation):
                    # objects a controller keeps creating (a CronJob's Jobs): the names are refreshed until the end
                    refresh = asyncio.create_task(self._refresh_plan(plan, sc, app, pods_of))
            self.echo(
                f"{pid}: app healthy in {t_ready - t0:.1f}s, services ready in {time.monotonic() - t_ready:.1f}s; "
                "injected"
            )
            await self._wait(timeline, task, sc)
            if task != "mitigation" and timeline.of("incident_opened"):
                # let the incident finish (usually seconds) rather than restart the services for the next scenario
                await timeline.wait_for("incident_closed", self.opts.drain_s)
            if noise is not None:  # the change in flight converges; then the detector pauses as after any run
                rec.noise = await asyncio.to_thread(noise.stop)
            self._pause_detector(True)
            build_record(rec, timeline, t_inject)
            if noise is not None:
                judge_noise(rec, sc, timeline)
            if server_log is not None:
                rec.llm_server = server_log.read()
            # the services stay for the next scenario only when no incident of this one is still open
            opened = {e["incident_id"] for e in timeline.of("incident_opened")}
            closed = {e["incident_id"] for e in timeline.of("incident_closed")}
            keep = opened <= closed
            if not keep:
                await self._stop_system()
            await asyncio.to_thread(self._judge, rec, sc, task, timeline)
        except (StepError, RuntimeError, TimeoutError) as exc:
            rec.error = f"{type(exc).__name__}: {exc}"
        finally:
            if refresh is not None:
                refresh.cancel()
            if policy == "scripted" and self.opts.plan is None and plan is not None and plan.exists():
                (self.log_dir / f"{pid}.plan.yaml").write_text(plan.read_text())
            if not keep:
                await self._stop_system()
            if timeline is not None:
                await timeline.stop()
                # the incident's events as they were (reasoning steps, decisions, undos): the memory suite's
                # recorded traces are built from these (arena/bench/memory/traces.py)
                rec.timeline_file = _write_timeline(
                    self.log_dir / f"{pid}.{policy}.{ablation}.{rep}.timeline.jsonl", timeline.events
                )
            if noise is not None:
                self._pause_detector(True)
                rec.noise = await asyncio.to_thread(noise.stop)
                try:
                    rec.noise_restored = await asyncio.to_thread(noise.restore)
                except Exception as exc:  # the next scenario's healthy() redeploys when this left the app changed
                    self.echo(f"{pid}: putting back the noise's changes failed: {exc}")
                finally:
                    noise.kube.close()
            try:
                await asyncio.to_thread(self.engine.recover, sc)
            except Exception as exc:  # the next scenario's healthy() redeploys when recovery left the app broken
                self.echo(f"{pid}: recover failed: {exc}")
        rec.wall_s = round(time.monotonic() - t0, 2)
        self.echo(
            f"{pid}: success={rec.success} detected={rec.detected} ttd={rec.ttd_s} ttm={rec.ttm_s} "
            f"outcome={rec.outcome} attempts={len(rec.attempts)} actions={rec.actions} tnr={rec.tnr_held} "
            f"wall={rec.wall_s}s" + (f" error={rec.error}" if rec.error else "")
        )
        return rec

    async def _wait(self, timeline: Timeline, task: str, sc: s.Scenario) -> None:
        limit = self.opts.timeout_s
        if task == "mitigation":
            await timeline.wait_for("incident_closed", limit)
        elif task == "detection":
            window = self.opts.noop_window_s
            if self.opts.noise is not None:  # a run without a fault watches the whole noise schedule, then the window
                window += self.opts.noise.duration_s
            await timeline.wait_for("incident_opened", limit if sc.ground_truth.detection else window)
        else:
            await timeline.wait_for("diagnosis", limit)

    def _noise(self, app: AppSpec, run: int) -> NoiseGenerator:
        assert self.opts.noise is not None
        kube = Kube.from_kubeconfig(str(self.kubeconfig))  # its own client: it runs beside the engine's injection
        return NoiseGenerator(kube, app.namespace, self.opts.noise, run=run, echo=self.echo).start()

    def _judge(self, rec: ScenarioRecord, sc: s.Scenario, task: str, timeline: Timeline) -> None:
        truth = sc.ground_truth
        if task == "mitigation":
            verdict = self.engine.check(sc, self.opts.oracle, rec.scenario)  # type: ignore[arg-type]
            rec.success, rec.oracle_reasons = verdict.passed, verdict.reasons
            return
        if task == "detection":
            rec.answer = "Yes" if rec.detected else "No"
            rec.success = oracles.evaluate_detection(truth, rec.answer)
            return
        diagnoses = timeline.of("diagnosis")
        if not diagnoses:
            rec.oracle_reasons = ["no diagnosis" if rec.detected else "no incident opened"]
            rec.answer = None
            return
        d = diagnoses[0]
        if task == "localization":
            # AIOpsLab scores a submitted list; the diagnoser ranks components, and the top one is its answer
            top = (d.get("localisation") or [])[:1]
            rec.answer = json.dumps(top)
            rec.success, score = oracles.evaluate_localization(truth, top)
            rec.score = score
        else:
            rc = d.get("root_cause") or {}
            rec.answer = json.dumps(rc)
            rec.success = oracles.evaluate_analysis(truth, rc)

    # -- the app ------------------------------------------------------------------------------------------------
    def _healthy(self, app: AppSpec, timeout: float = 40.0) -> None:
        """Every pod Ready and a clean workload; otherwise a full redeploy (recovery may not undo everything a
        policy changed), freeing the PVs the old namespace's claims held."""
        try:
            self._wait_healthy(app, timeout)
            time.sleep(0.5)  # a recovery's rollout may not have begun at the first check: check once more
            self._wait_healthy(app, timeout)
        except TimeoutError:
            self.echo(f"{app.name}: not healthy after recovery; redeploying {app.namespace}")
            self._redeploy(app)
            self._wait_healthy(app, 90.0)

    def _wait_healthy(self, app: AppSpec, timeout: float) -> None:
        eng = self.engine
        if eng.kube.get("Namespace", None, app.namespace) is None:
            eng.deploy(app)
        eng.wait_ready(app.namespace, timeout)
        probe = WorkloadSpec(rate=20, duration_s=1, connections=2)
        clean = lambda: eng._plane().workload(app.namespace, probe).clean  # noqa: E731
        wait_for(f"{app.name} to serve cleanly", clean, timeout, 0.25)

    async def _refresh_plan(self, plan: Path, sc: s.Scenario, app: AppSpec, pods_of: PodsOf) -> None:
        """Rewrite the scripted plan every second with the objects of the moment (re-read at each attempt)."""
        while True:
            await asyncio.sleep(1.0)
            doc = await asyncio.to_thread(scripted_plan, sc, app, self.opts.script, pods_of)
            _write_atomic(plan, doc)

    def _pod_names(self, namespace: str, selector: dict[str, str], kind: str = "Pod") -> list[str]:
        if kind != "Pod":
            objs = self.engine.kube.list(kind, namespace, selector)
            return sorted(o["metadata"]["name"] for o in objs if not o["metadata"].get("deletionTimestamp"))
        return sorted(
            p["metadata"]["name"]
            for p in self.engine.pods(namespace, selector)
            if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        )

    def _redeploy(self, app: AppSpec) -> None:
        self.engine.redeploy(app)
