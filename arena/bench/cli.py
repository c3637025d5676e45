"""``stratus bench``: run a scenario suite end to end and write bench.json, report.md and the plots."""

from __future__ import annotations

import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, help="Benchmark Stratus on the arena's scenario suites.")


def _split(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    out = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
    bad = [v for v in out if v not in allowed]
    if bad:
        raise typer.BadParameter(f"unknown {what} {bad}; choose from {', '.join(allowed)}")
    return out


def _settings(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("STRATUS_"):
            raise typer.BadParameter(f"--set wants STRATUS_KEY=VALUE, not {item!r}")
        out[key] = value
    return out


@app.callback(invoke_without_command=True)
def bench(
    suite: Annotated[
        str, typer.Option(help="aiopslab-mitigation, detection, localisation, rca, chaos, memory or sregym.")
    ] = "aiopslab-mitigation",
    policy: Annotated[
        list[str],
        typer.Option(help="Mitigation policy: rulebook, llm, hybrid, chaos, scripted (repeatable or a,b)."),
    ] = ["rulebook"],  # noqa: B006 - typer reads the default
    repeat: Annotated[int, typer.Option(min=1, help="Runs of each scenario.")] = 1,
    ablation: Annotated[
        list[str], typer.Option(help="none, no-retry, naive-retry (repeatable or a,b: each runs the suite).")
    ] = ["none"],  # noqa: B006
    oracle: Annotated[str, typer.Option(help="Mitigation oracle: strict or compat (AIOpsLab's own).")] = "strict",
    scenarios: Annotated[Path | None, typer.Option(help="Folder of scenario files (default: the catalogue).")] = None,
    only: Annotated[list[str], typer.Option(help="Only problem ids containing this text (repeatable).")] = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option(help="Output folder (default bench-out/<timestamp>).")] = None,
    timeout: Annotated[float, typer.Option(help="Time limit per scenario, seconds.")] = 150.0,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Run the scenarios in this many parallel workers, each a process with its own arena, NATS, Redis and "
            "services on its own ports, taking the next scenario of its app when one is free (not for the chaos or "
            "memory suites). Their records are merged into one.",
        ),
    ] = 1,
    transactions: Annotated[int, typer.Option(help="chaos suite: run until this many transactions.")] = 100,
    plan: Annotated[Path | None, typer.Option(help="scripted: a plan file (default: each scenario's fix).")] = None,
    script: Annotated[
        str, typer.Option(help="scripted without --plan: fix (the documented fix) or harmful-then-fix.")
    ] = "fix",
    embedding: Annotated[
        bool, typer.Option(help="Detector and diagnoser with the state embedding (starts a Prometheus for it).")
    ] = False,
    slo_queries: Annotated[
        bool,
        typer.Option(
            help="Operator SLO queries: start a Prometheus scraping the arena's app plane and give the services its "
            "URL and STRATUS_SLO_QUERIES (from --set, else the examples in deploy/prometheus/slo-queries.yml). "
            "Implied by --set STRATUS_SLO_QUERIES=... without STRATUS_PROMETHEUS_URL. The other detection terms are "
            "settings: --set STRATUS_LATENCY_SLO_ENABLED=1 (each scenario then waits for the scope's healthy latency "
            "samples before its fault), --set STRATUS_STUCK_DELETION_S=N."
        ),
    ] = False,
    noise: Annotated[
        bool,
        typer.Option(
            help="Make benign changes during every run (SREGym's noise mode, on the arena): rolling restarts, scale "
            "up and back within capacity, a pod of a multi-replica Deployment deleted and recreated, a ConfigMap "
            "change with a rollout, an image moved to an equivalent tag. Each change waits for the Deployment to "
            "converge; all are recorded with their time, and the report counts false positives (an incident on a run "
            "without a fault) and wrong attributions (a diagnosis blaming a noise change). Runs without a fault "
            "watch the whole noise schedule."
        ),
    ] = False,
    noise_options: Annotated[
        str,
        typer.Option(
            help="With --noise: seed=N (reproducible schedule and targets), count=N (changes per run, 1-50), "
            "gap=S (at least S seconds between changes), jitter=S, start=S, before=N (changes before the fault), "
            "kinds=a+b (rollout_restart, scale, delete_pod, config_reload, image_alias). Default: "
            "seed=0,count=4,gap=3,jitter=2,start=1,before=1, every kind."
        ),
    ] = "",
    set_: Annotated[
        list[str],
        typer.Option(
            "--set",
            help="KEY=VALUE: a STRATUS_* setting for the services, over the bench's own tight timings "
            "(e.g. STRATUS_LEASE_TTL_S=60 for a slow local model on a busy machine). Repeatable.",
        ),
    ] = [],  # noqa: B006
    regenerate: Annotated[
        bool, typer.Option(help="memory suite: regenerate the synthetic dataset and retrain the step check first.")
    ] = False,
    recurring: Annotated[
        bool, typer.Option(help="memory suite: also run the recurring-incident part (the system on the arena).")
    ] = True,
    llm_log: Annotated[
        Path | None,
        typer.Option(
            help="The local llama.cpp server's log (make llm-local writes ~/.cache/stratus/llm/server.log): "
            "per scenario, the prompt tokens the server read and the time reading vs generating."
        ),
    ] = None,
) -> None:
    """Run a suite: per scenario a healthy app, the six services, inject, detect/diagnose/mitigate, judge, recover."""
    from rich.console import Console

    from arena.bench.report import write_outputs
    from arena.bench.runner import ABLATIONS, POLICIES, SUITES, Bench, BenchOptions

    if suite == "memory":
        from arena.bench.memory.suite import run_suite, tables

        console = Console()
        out = out or Path("bench-out") / f"memory-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        result = run_suite(
            out,
            lambda line: console.print(f"[dim]{datetime.now(UTC):%H:%M:%S}[/] {line}"),
            regenerate=regenerate,
            recurring=recurring,
            only=only or None,
        )
        typer.echo(tables(result))
        console.print(f"written to {out}")
        return
    if suite not in SUITES:
        raise typer.BadParameter(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    if jobs > 1 and suite == "chaos":
        raise typer.BadParameter("the chaos suite runs with --jobs 1 (it counts transactions across rounds)")
    if script not in ("fix", "harmful-then-fix"):
        raise typer.BadParameter("script is fix or harmful-then-fix")
    if oracle not in ("strict", "compat"):
        raise typer.BadParameter("oracle is strict or compat")
    noise_spec = None
    if noise_options and not noise:
        raise typer.BadParameter("--noise-options needs --noise (the options describe the noise it turns on)")
    if noise:
        from arena.bench.noise import NoiseError, NoiseSpec

        try:
            noise_spec = NoiseSpec.parse(noise_options or "on")
        except NoiseError as exc:
            raise typer.BadParameter(str(exc), param_hint="--noise-options") from None
    console = Console()
    out = out or Path("bench-out") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    opts = BenchOptions(
        suite=suite,
        policies=_split(policy, POLICIES, "policy"),
        ablations=_split(ablation, ABLATIONS, "ablation"),
        repeat=repeat,
        oracle=oracle,
        scenarios_dir=scenarios,
        only=only,
        out=out,
        timeout_s=timeout,
        chaos_transactions=transactions,
        plan=plan,
        script=script,
        embedding=embedding,
        llm_log=llm_log,
        noise=noise_spec,
        jobs=jobs,
        env=_settings(set_),
        slo_queries=slo_queries,
        command="stratus bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
    )
    t0 = datetime.now(UTC)
    try:
        record = Bench(opts, echo=lambda line: console.print(f"[dim]{datetime.now(UTC):%H:%M:%S}[/] {line}")).run()
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    paths = write_outputs(record, out)
    ok = sum(r.success for r in record.runs)
    console.print(
        f"[bold]{ok}/{len(record.runs)} succeeded[/] in {(datetime.now(UTC) - t0).total_seconds():.0f} s; "
        + ", ".join(f"{k}: {v}" for k, v in paths.items())
    )
