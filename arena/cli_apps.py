"""``stratus arena`` commands of the applications half: up, scenarios, inject, check, recover, symptoms, workload,
validate, bench-apps. Mounted into ``arena/cli.py`` (this module's ``app``)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(add_completion=False)

KUBECONFIG = Path("arena.kubeconfig")
KubeconfigOpt = Annotated[Path, typer.Option("--kubeconfig", help="Kubeconfig of the arena.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="Oracle: strict (default) or compat (AIOpsLab's own).")]


def _engine(kubeconfig: Path, plane_url: str | None = None) -> Any:
    from arena.scenarios.engine import Engine, PlaneClient
    from arena.scenarios.kube import Kube

    if not kubeconfig.exists():
        typer.echo(f"no kubeconfig at {kubeconfig}: start an arena with `stratus arena up --app ...` first", err=True)
        raise typer.Exit(2)
    kube = Kube.from_kubeconfig(str(kubeconfig))
    return Engine(kube, PlaneClient(plane_url) if plane_url else None)


def _targets(arg: str) -> list[tuple[Any, str, str]]:
    """(scenario, task, problem id) for a problem id, a scenario file (its main id), or a folder of them."""
    from arena.scenarios.engine import Registry
    from arena.scenarios.schema import ScenarioError

    path = Path(arg)
    if arg.endswith((".yaml", ".yml")) or path.is_dir():
        if not path.exists():
            typer.echo(f"no scenario file or folder {arg}", err=True)
            raise typer.Exit(2)
        try:
            reg = Registry([path])
        except ScenarioError as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(2) from None
        out = [(sc, reg.get(pid)[1], pid) for sc, pid in reg.scenarios()]
        if not out:
            typer.echo(f"no scenario files in {arg}", err=True)
            raise typer.Exit(2)
        return out
    try:
        sc, task = Registry().get(arg)
    except KeyError as e:
        typer.echo(str(e).strip('"'), err=True)
        raise typer.Exit(2) from None
    return [(sc, task, arg)]


def _arena_answers(kubeconfig: Path) -> bool:
    from arena.scenarios.engine import plane_url

    if not kubeconfig.exists():
        return False
    try:
        eng = _engine(kubeconfig)
        return plane_url(eng.kube) is not None
    except Exception:
        return False


@app.command()
def up(
    apps: Annotated[
        list[str], typer.Option("--app", help="hotel-reservation, social-network and/or astronomy-shop (repeatable).")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on (when starting an arena).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port when starting an arena (0: a free one).")] = 6443,
    plane_port: Annotated[int, typer.Option(help="Port of the Jaeger/Prometheus/load endpoints (0: free).")] = 16686,
    kubeconfig: KubeconfigOpt = KUBECONFIG,
    background_rps: Annotated[float, typer.Option(help="Background requests per second to each app.")] = 2.0,
    timeout: Annotated[float, typer.Option(help="Longest wait for every pod to be Ready.")] = 120.0,
) -> None:
    """Deploy applications (plain manifests through the Kubernetes API) and wait until every pod is Ready.

    If the kubeconfig points at a running arena with the applications plane, deploy there and return; otherwise
    start one in this process, deploy, and serve until Ctrl-C.
    """
    from arena.apps import APPS

    unknown = [a for a in apps if a not in APPS]
    if unknown:
        raise typer.BadParameter(f"unknown app(s) {unknown}; choose from {', '.join(APPS)}")
    arena = None
    if not _arena_answers(kubeconfig):
        from arena.telemetry.plane import AppsArena

        arena = AppsArena(host=host, port=port, plane_port=plane_port, background_rps=background_rps).start()
        arena.write_kubeconfig(kubeconfig)
        typer.echo(f"arena serving the Kubernetes API on {arena.url}; kubeconfig: {kubeconfig}")
        typer.echo(f"Jaeger query API and Prometheus /metrics on {arena.plane_url}")
    engine = _engine(kubeconfig)
    for name in apps:
        spec = APPS[name]
        t0 = time.monotonic()
        engine.deploy(spec)
        try:
            engine.wait_ready(spec.namespace, timeout)
        except TimeoutError as e:
            typer.echo(f"{name}: {e}", err=True)
            raise typer.Exit(1) from None
        typer.echo(
            f"{name}: {len(engine.pods(spec.namespace))} pods Ready in {time.monotonic() - t0:.2f}s "
            f"(namespace {spec.namespace})"
        )
    if arena is None:
        return
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    typer.echo("serving; Ctrl-C to stop")
    while not done.wait(0.5):
        pass
    typer.echo("stopping")
    arena.stop()


@app.command()
def scenarios(
    app_name: Annotated[str | None, typer.Option("--app", help="Only this application.")] = None,
    task: Annotated[
        str | None, typer.Option(help="Only this task (detection, localization, analysis, mitigation).")
    ] = None,
    capability: Annotated[str | None, typer.Option(help="Only scenarios exercising this capability.")] = None,
) -> None:
    """List the problem ids of the scenario files, with app, target, RCA and the capabilities they exercise."""
    from arena.scenarios.engine import Registry

    reg = Registry()
    for pid in reg.ids():
        sc, t = reg.get(pid)
        if (
            (app_name and sc.app != app_name)
            or (task and t != task)
            or (capability and capability not in sc.capabilities)
        ):
            continue
        gt = sc.ground_truth
        rca = f"{gt.system_level} / {gt.fault_type}" if gt.system_level else "-"
        caps = ",".join(sc.capabilities) or "-"
        lite = " lite" if sc.lite else ""
        typer.echo(f"{pid:60s} {sc.app:18s} {','.join(gt.localization) or '-':22s} {rca:40s} {caps}{lite}")


TargetArg = Annotated[str, typer.Argument(help="A problem id, a scenario file, or a folder of scenario files.")]


@app.command()
def inject(target: TargetArg, kubeconfig: KubeconfigOpt = KUBECONFIG) -> None:
    """Inject the fault of a scenario (its Kubernetes writes, exec commands, chaos objects)."""
    from arena.scenarios.engine import StepError

    targets = _targets(target)
    engine = _engine(kubeconfig)
    for sc, _, pid in targets:
        try:
            engine.inject(sc)
        except StepError as e:
            typer.echo(f"inject {pid}: {e}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"injected {pid}: {sc.description.strip()}")


@app.command()
def recover(target: TargetArg, kubeconfig: KubeconfigOpt = KUBECONFIG) -> None:
    """Undo a scenario's fault (its recover steps)."""
    from arena.scenarios.engine import StepError

    targets = _targets(target)
    engine = _engine(kubeconfig)
    for sc, _, pid in targets:
        try:
            engine.recover(sc)
        except StepError as e:
            typer.echo(f"recover {pid}: {e}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"recovered {pid}")


@app.command()
def check(
    target: TargetArg,
    kubeconfig: KubeconfigOpt = KUBECONFIG,
    mode: ModeOpt = "strict",
    answer: Annotated[str | None, typer.Option(help="detection/localization/analysis: the submission as JSON.")] = None,
) -> None:
    """The oracle's verdict with its reasons (mitigation: inspects the cluster; other tasks: judge --answer)."""
    from arena.scenarios import oracles

    if mode not in ("strict", "compat"):
        raise typer.BadParameter("mode is strict or compat")
    failed = 0
    for sc, task, pid in _targets(target):
        if task != "mitigation":
            if answer is None:
                raise typer.BadParameter(f"{pid} is a {task} problem: give the submission with --answer")
            value = json.loads(answer) if answer.strip()[:1] in '[{"' else answer
            if task == "detection":
                ok, score = oracles.evaluate_detection(sc.ground_truth, value), None
            elif task == "localization":
                ok, score = oracles.evaluate_localization(sc.ground_truth, value)
            else:
                ok, score = oracles.evaluate_analysis(sc.ground_truth, value), None
            typer.echo(json.dumps({"scenario": pid, "task": task, "passed": ok, "accuracy": score}))
            failed += not ok
            continue
        verdict = _engine(kubeconfig).check(sc, mode, pid)
        typer.echo(verdict.model_dump_json(indent=2))
        failed += not verdict.passed
    raise typer.Exit(1 if failed else 0)


@app.command()
def symptoms(target: TargetArg, kubeconfig: KubeconfigOpt = KUBECONFIG) -> None:
    """Which of a scenario's documented symptoms are present now."""
    targets = _targets(target)
    engine = _engine(kubeconfig)
    for sc, _, pid in targets:
        typer.echo(pid)
        for r in engine.symptoms(sc):
            typer.echo(f"  {'present' if r.present else 'absent ':8s} {r.check:15s} {r.detail}")


@app.command()
def workload(
    app_name: Annotated[str, typer.Option("--app", help="Application.")],
    kubeconfig: KubeconfigOpt = KUBECONFIG,
    rate: Annotated[float, typer.Option(help="Requests per second.")] = 10.0,
    duration: Annotated[float, typer.Option(help="Seconds.")] = 10.0,
    connections: Annotated[int, typer.Option(help="Connections.")] = 2,
    paced: Annotated[bool, typer.Option(help="Pace requests in real time instead of all at once.")] = False,
) -> None:
    """Run the app's wrk2 workload and print requests, non-2xx and latency percentiles."""
    from arena.apps import APPS
    from arena.workload.generator import WorkloadSpec

    spec = APPS[app_name]
    eng = _engine(kubeconfig)
    report = eng._plane().workload(
        spec.namespace, WorkloadSpec(rate=rate, duration_s=duration, connections=connections), 1.0 if paced else 0.0
    )
    typer.echo(report.text())
    for err, n in report.errors.items():
        typer.echo(f"  {n:5d} x {err}")


@app.command()
def validate(files: list[Path]) -> None:
    """Validate scenario files; an invalid one is rejected with the field and the reason."""
    from arena.scenarios.schema import ScenarioError, load_scenario

    bad = 0
    for f in files:
        try:
            sc = load_scenario(f)
            typer.echo(f"ok      {f}: {', '.join(sc.ids())}")
        except ScenarioError as e:
            bad += 1
            typer.echo(f"invalid {e}")
    raise typer.Exit(1 if bad else 0)


@app.command("bench-apps")
def bench_apps(
    fast: Annotated[bool, typer.Option(help="Use the tests' tighter timings.")] = False,
) -> None:
    """Benchmark: arena up -> all Ready per app, inject -> first symptom, memory with both apps."""
    from arena.workload.bench import main

    main(fast=fast)
