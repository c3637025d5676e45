"""The ``stratus`` command line.

Sub-commands of packages the product does not depend on (``stratus arena ...``) are discovered at run time from the
``stratus.cli`` entry-point group, so the kernel never imports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stratus import __version__
from stratus.bus import Bus
from stratus.contracts import SERVICES, HealthReply
from stratus.errors import StratusError
from stratus.localstate import Endpoint, resolve
from stratus.settings import SETTINGS_BY_SERVICE, CliSettings

if TYPE_CHECKING:
    from stratus.supervisor import Supervisor
from stratus.scrub import scrub_text

app = typer.Typer(
    name="stratus",
    help="Stratus: autonomous SRE for Kubernetes. Detects, diagnoses and mitigates failures; every change is a "
    "transaction that is undone when it does not help (Transactional No-Regression).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
T = TypeVar("T")
S = TypeVar("S", bound=BaseSettings)
NATS_URL_HELP = "NATS URL (default: STRATUS_NATS_URL, or the one a running `stratus up` started in its place)."


@app.command()
def version() -> None:
    """Print the Stratus version."""
    console.print(f"stratus {__version__}")


def _fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr (never wrapped, never a traceback), then exit with ``code``."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _load(cls: type[S]) -> S:
    try:
        return cls()
    except ValidationError as exc:
        bad = "; ".join(f"STRATUS_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()[:5])
        _fail(f"invalid setting: {bad}")


def _nats(option: str | None) -> tuple[Endpoint, CliSettings]:
    """The NATS a one-shot command talks to: --nats-url, else STRATUS_NATS_URL or the default, unless a running
    `stratus up` started its own NATS in place of that one (its up.json says so)."""
    settings = _load(CliSettings)
    endpoint = resolve(
        "nats",
        option=option,
        configured=str(settings.nats_url),
        from_env="nats_url" in settings.model_fields_set,
        data_dir=settings.data_dir,
    )
    return endpoint, settings


@app.command()
def up(
    services: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="Start only these services (repeatable).")
    ] = None,
    replicas: Annotated[
        list[str] | None, typer.Option("--replicas", help="SERVICE=N replicas of a service (repeatable).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the servers `up` starts keep their data, and up.json their URLs "
            "(default: STRATUS_DATA_DIR, else ~/.local/state/stratus)."
        ),
    ] = None,
    ephemeral: Annotated[
        bool,
        typer.Option(
            "--ephemeral",
            help="Keep the started servers' data in temporary directories removed on stop: the audit trail and "
            "the incidents' state are lost.",
        ),
    ] = False,
    start_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for every service to answer healthy before reporting.")
    ] = 15.0,
) -> None:
    """Start NATS and Redis (if none answers at the configured URLs), then every service as its own process.

    Servers it starts listen on free ports. Their URLs go to up.json in the data directory, where `stratus status`
    and `stratus incidents` find them, and their data stays there, so the audit trail survives a restart (unless
    --ephemeral). With STRATUS_METRICS_PORT set, each process gets its own port counted up from it. Logs of all
    services are merged into this terminal. Ctrl-C stops everything and leaves no process behind.

    Exit status: 0 after Ctrl-C, 1 when a service exits on its own (at start or later), 2 when the configuration is
    wrong (e.g. STRATUS_KUBECONFIG names no file) or a server cannot be started.
    """
    from stratus.kubeapi import check_kubeconfig
    from stratus.localinfra import reachable
    from stratus.localstate import DataDirLock, StartedServer, UpState, clear_state, write_state
    from stratus.supervisor import Supervisor

    settings = _load(CliSettings)
    chosen = tuple(services or SERVICES)
    unknown = [s for s in chosen if s not in SERVICES]
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {unknown}; choose from {', '.join(SERVICES)}")
    counts = {}
    for item in replicas or []:
        name, _, n = item.partition("=")
        if name not in SERVICES or not n.isdigit() or int(n) < 1:
            raise typer.BadParameter(f"--replicas takes SERVICE=N with N >= 1, got {item!r}")
        counts[name] = int(n)
    for service in chosen:  # a service whose settings do not validate would die at start with a traceback
        _load(SETTINGS_BY_SERVICE[service])
    if settings.kubeconfig and any(s != "bridge" for s in chosen):
        try:
            check_kubeconfig(settings.kubeconfig)
        except StratusError as exc:
            _fail(f"stratus up: {exc}")

    data = data_dir or settings.data_dir
    requested = {"nats": str(settings.nats_url), "redis": str(settings.redis_url)}
    # another `up` on this data directory started servers in place of these URLs: join them (more services)
    fields = settings.model_fields_set
    nats = resolve("nats", option=None, configured=requested["nats"], from_env="nats_url" in fields, data_dir=data)
    redis = resolve("redis", option=None, configured=requested["redis"], from_env="redis_url" in fields, data_dir=data)
    for joined in (e for e in (nats, redis) if e.url != requested[e.name]):
        console.print(f"supervisor  using {joined.label} at {joined.url} ({joined.source})")
    sup = Supervisor(
        nats.url,
        redis.url,
        services=chosen,
        replicas=counts,
        data_dir=None if ephemeral else data,
    )
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    with contextlib.ExitStack() as owned:
        try:
            if not (reachable(sup.nats_url) and reachable(sup.redis_url)):
                owned.enter_context(DataDirLock(data))  # we start a server: its data (and up.json) are ours
            sup.ensure_infrastructure()
            if sup.started_servers:
                servers = [StartedServer(s.name, requested[s.name], s.url) for s in sup.started_servers]
                state = UpState(os.getpid(), str(data), ephemeral, servers)
                path = write_state(data, state)
                owned.callback(clear_state, data, os.getpid())
                where = "temporary directories" if ephemeral else str(data)
                console.print(f"supervisor  server URLs in {path}; server data in {where}")
            ports = sup.metrics_ports()
            if ports:
                console.print("supervisor  metrics ports: " + ", ".join(f"{s}-{r} {p}" for (s, r), p in ports.items()))
            sup.start_services()
            code = _await_start(sup, chosen, settings, start_timeout, lambda: stopping)
            while code == 0 and not stopping:
                dead = sup.exited()
                if dead:
                    typer.echo(f"stratus up: {_describe_exits(dead)} exited; stopping everything", err=True)
                    code = 1
                    break
                time.sleep(0.2)
        except StratusError as exc:
            typer.echo(f"stratus up: {exc}", err=True)
            code = 2
        finally:
            console.print("supervisor  stopping services")
            sup.stop()
            console.print("supervisor  stopped")
    if code:
        raise typer.Exit(code)


def _describe_exits(dead: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} (exit code {rc})" for name, rc in dead)


def _await_start(
    sup: Supervisor, chosen: tuple[str, ...], settings: CliSettings, timeout: float, stopping: Callable[[], bool]
) -> int:
    """Wait until every service answers healthy, one exits (1), or ``timeout`` passes (report who is not ready)."""
    from stratus.supervisor import gather_health

    deadline = time.monotonic() + timeout
    replies: dict[str, list[HealthReply]] = {}
    while not stopping():
        dead = sup.exited()
        if dead:
            typer.echo(
                f"stratus up: {_describe_exits(dead)} exited while starting (its last log lines above say why); "
                "stopping everything",
                err=True,
            )
            return 1
        with contextlib.suppress(Exception):
            replies = asyncio.run(gather_health(sup.nats_url, chosen, window=0.4, topology=settings.topology))
        healthy = [s for s in chosen if any(r.ok for r in replies.get(s, []))]
        if len(healthy) == len(chosen) or time.monotonic() > deadline:
            waiting = [
                f"{s} ({'; '.join(r.details.get('starting', 'not ready') for r in replies.get(s, [])) or 'no answer'})"
                for s in chosen
                if s not in healthy
            ]
            console.print(
                f"[bold]supervisor  {len(healthy)}/{len(chosen)} services healthy[/] "
                f"(nats {sup.nats_url}, redis {sup.redis_url}); Ctrl-C to stop"
                + (f"; not ready yet: {', '.join(waiting)}" if waiting else "")
            )
            return 0
        time.sleep(0.3)
    return 0


@app.command()
def status(
    nats_url: Annotated[
        str | None, typer.Option(help="NATS URL (default: STRATUS_NATS_URL, or the one `stratus up` started).")
    ] = None,
    wait: Annotated[float, typer.Option(help="Wait up to this many seconds for every service to be healthy.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Ask every service for its health over NATS: replicas, uptime, and each dependency (NATS, Redis, the
    Kubernetes API, the LLM) as ok or degraded with the reason.

    Exit status: 0 when every service has a healthy replica, 1 when one has none, 2 when NATS cannot be reached
    (the message names the URL tried).
    """
    from stratus.oneshot import CONNECT_TIMEOUT_S, Unreachable, check_reachable, quiet_client_logs
    from stratus.supervisor import gather_health, health_json, wait_healthy

    endpoint, settings = _nats(nats_url)
    t = settings.topology
    quiet_client_logs()
    try:
        check_reachable(endpoint, CONNECT_TIMEOUT_S)
        replies = asyncio.run(
            wait_healthy(endpoint.url, timeout=wait, topology=t)
            if wait > 0
            else gather_health(endpoint.url, topology=t)
        )
    except Unreachable as exc:
        _fail(str(exc))
    except Exception as exc:
        _fail(endpoint.unreachable(f"the NATS handshake failed ({type(exc).__name__}: {scrub_text(str(exc))})"))
    if as_json:
        typer.echo(health_json(replies))
    else:
        table = Table("service", "replicas", "healthy", "uptime (s)", "dependencies", "details")
        for s in SERVICES:
            rs = replies.get(s, [])
            ok = [r for r in rs if r.ok]
            table.add_row(
                s,
                str(len(rs)),
                "[green]yes[/]" if ok else "[red]no[/]",
                ", ".join(f"{r.uptime_s:.0f}" for r in rs) or "-",
                _dependencies(rs),
                "; ".join(f"{k}={v}" for r in rs for k, v in r.details.items()) or "-",
            )
        console.print(table)
    if not all(any(r.ok for r in replies.get(s, [])) for s in SERVICES):
        raise typer.Exit(1)


def _dependencies(replies: list[HealthReply]) -> str:
    """Each dependency once: ok when every replica says so, else each distinct reason it is degraded."""
    seen: dict[str, list[str]] = {}
    for r in replies:
        for name, state in r.dependencies.items():
            if state not in seen.setdefault(name, []):
                seen[name].append(state)
    parts = []
    for name, states in seen.items():
        bad = [st for st in states if st != "ok"]
        parts.append(f"{name} [green]ok[/]" if not bad else f"{name} [yellow]{escape('; '.join(bad))}[/]")
    return "\n".join(parts) or "-"


incidents_app = typer.Typer(help="The audit trail: incidents and their timelines, from the event stream.")
app.add_typer(incidents_app, name="incidents")


@incidents_app.command("list")
def incidents_list(
    nats_url: Annotated[str | None, typer.Option(help=NATS_URL_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every incident on record: scope, state, outcome, attempts.

    Exit status: 0, or 2 when NATS cannot be reached (the message names the URL tried).
    """
    from stratus.audit import incidents

    summaries = _with_bus(nats_url, incidents)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(s) for s in summaries], default=str, indent=2))
        return
    table = Table("incident", "scope", "opened", "b", "state", "outcome", "attempts", "visible mu")
    for s in summaries:
        table.add_row(
            s.incident_id,
            s.scope,
            s.opened_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{s.baseline:g}",
            s.state,
            s.outcome or "-",
            str(s.attempts),
            " -> ".join(f"{m:g}" for m in s.visible_mu) or "-",
        )
    console.print(table)


@incidents_app.command("show")
def incidents_show(
    incident_id: Annotated[str, typer.Argument(help="The incident id (see `stratus incidents list`).")],
    nats_url: Annotated[str | None, typer.Option(help=NATS_URL_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the events as JSON.")] = False,
) -> None:
    """One incident's full timeline: detection, diagnosis, each transaction with its mu-paths, the outcome.

    Exit status: 0, 1 when the incident has no events, 2 when NATS cannot be reached.
    """
    from stratus.audit import describe, timeline

    events = _with_bus(nats_url, lambda bus: timeline(bus, incident_id))
    if not events:
        console.print(f"[red]no events for incident {incident_id!r}[/] (see `stratus incidents list`)")
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        return
    table = Table("time", "event", "what happened")
    for e in events:
        table.add_row(e.ts.strftime("%H:%M:%S.%f")[:-3], e.kind, describe(e))
    console.print(table)


approvals_app = typer.Typer(help="Plans waiting for a human (the approve mode): list, show, approve, deny.")
app.add_typer(approvals_app, name="approvals")


@approvals_app.command("list")
def approvals_list(
    nats_url: Annotated[str | None, typer.Option(help="NATS URL (default: STRATUS_NATS_URL).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every plan waiting for approval: incident, scope, transaction, writes, deadline."""
    from stratus.approvals import pending

    waiting = _with_bus(nats_url, pending)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in waiting], indent=2))
        return
    table = Table("incident", "scope", "transaction", "writes", "mu", "deadline")
    for r in waiting:
        table.add_row(
            r.incident_id, r.scope, r.tx_id, str(len(r.actions)), f"{r.mu:g}", r.deadline.strftime("%H:%M:%S")
        )
    console.print(table)


@approvals_app.command("show")
def approvals_show(
    incident_id: Annotated[str, typer.Argument(help="The incident whose plan waits.")],
    nats_url: Annotated[str | None, typer.Option(help="NATS URL (default: STRATUS_NATS_URL).")] = None,
) -> None:
    """One pending plan: each write with its server-side dry-run diff and its undo, and the expected effect."""
    from stratus.approvals import pending

    found = [r for r in _with_bus(nats_url, pending) if r.incident_id == incident_id]
    if not found:
        console.print(f"[red]no plan of {incident_id!r} waits for approval[/] (see `stratus approvals list`)")
        raise typer.Exit(1)
    r = found[0]
    typer.echo(f"{r.incident_id} ({r.scope}) {r.tx_id}: {len(r.actions)} write(s); decide by {r.deadline:%H:%M:%S}")
    typer.echo(f"expected effect: {r.expected_effect}")
    for i, planned in enumerate(r.actions, 1):
        a = planned.action
        typer.echo(f"\n{i}. {a.verb} " + "/".join(p for p in (a.kind, a.namespace, a.name) if p) + f" {a.params}")
        typer.echo(f"   {planned.note}")
        typer.echo(planned.diff or "   (no object diff)")


def _decide(incident_id: str, approved: bool, by: str, reason: str, tx_id: str | None, nats_url: str | None) -> None:
    from stratus.approvals import decide
    from stratus.errors import PermanentError

    try:
        decided = _with_bus(
            nats_url, lambda bus: decide(bus, incident_id, approved=approved, by=by, reason=reason, tx_id=tx_id)
        )
    except PermanentError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"{'approved' if approved else 'denied'}: {decided.tx_id} of {decided.incident_id}")


@approvals_app.command("approve")
def approvals_approve(
    incident_id: Annotated[str, typer.Argument(help="The incident whose plan waits.")],
    by: Annotated[str, typer.Option(help="Who approves (for the timeline).")] = "cli",
    reason: Annotated[str, typer.Option(help="Why (for the timeline).")] = "",
    tx_id: Annotated[
        str | None, typer.Option(help="Approve only if this transaction's plan is the pending one.")
    ] = None,
    nats_url: Annotated[str | None, typer.Option(help="NATS URL (default: STRATUS_NATS_URL).")] = None,
) -> None:
    """Approve the pending plan: it runs as a transaction under TNR (validated, undone if it does not help)."""
    _decide(incident_id, True, by, reason, tx_id, nats_url)


@approvals_app.command("deny")
def approvals_deny(
    incident_id: Annotated[str, typer.Argument(help="The incident whose plan waits.")],
    by: Annotated[str, typer.Option(help="Who denies (for the timeline).")] = "cli",
    reason: Annotated[str, typer.Option(help="Why (for the timeline).")] = "",
    tx_id: Annotated[str | None, typer.Option(help="Deny only if this transaction's plan is the pending one.")] = None,
    nats_url: Annotated[str | None, typer.Option(help="NATS URL (default: STRATUS_NATS_URL).")] = None,
) -> None:
    """Deny the pending plan: nothing is written and the incident escalates."""
    _decide(incident_id, False, by, reason, tx_id, nats_url)


def _with_bus(nats_url: str | None, fn: Callable[[Bus], Awaitable[T]]) -> T:
    """Run ``fn`` on a bounded NATS connection; when NATS cannot be reached, one line and exit status 2."""
    from stratus.oneshot import Unreachable, with_bus

    endpoint, settings = _nats(nats_url)
    try:
        return asyncio.run(with_bus(endpoint, settings.topology, fn))
    except Unreachable as exc:
        _fail(str(exc))


@app.command("settings")
def show_settings(service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")]) -> None:
    """List a service's settings: environment variable, default and meaning."""
    cls = SETTINGS_BY_SERVICE.get(service)
    if cls is None:
        raise typer.BadParameter(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
    table = Table("variable", "default", "meaning")
    for name, info in cls.model_fields.items():
        default = "" if info.is_required() else repr(info.get_default(call_default_factory=True))
        table.add_row(f"STRATUS_{name.upper()}", default, info.description or "")
    console.print(table)


def _unavailable(name: str, exc: Exception) -> Callable[[], None]:
    def command() -> None:
        sys.exit(f"{name}: unavailable ({exc!r}); reinstall with `make install`")

    return command


def _mount_plugins() -> None:
    for ep in entry_points(group="stratus.cli"):
        try:
            sub = ep.load()
        except Exception as exc:  # a broken plugin must not break the product's CLI
            app.command(ep.name, help=f"(unavailable: {exc!r})")(_unavailable(ep.name, exc))
            continue
        app.add_typer(sub, name=ep.name)


def main() -> None:
    _mount_plugins()
    app()


if __name__ == "__main__":
    main()
