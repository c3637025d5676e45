"""The ``stratus`` command line.

Sub-commands of packages the product does not depend on (``stratus arena ...``) are discovered at run time from the
``stratus.cli`` entry-point group, so the kernel never imports them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from stratus import __version__
from stratus.bus import Bus
from stratus.contracts import SERVICES
from stratus.settings import SETTINGS_BY_SERVICE, CommonSettings

app = typer.Typer(
    name="stratus",
    help="Stratus: autonomous SRE for Kubernetes. Detects, diagnoses and mitigates failures; every change is a "
    "transaction that is undone when it does not help (Transactional No-Regression).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
T = TypeVar("T")


@app.command()
def version() -> None:
    """Print the Stratus version."""
    console.print(f"stratus {__version__}")


@app.command()
def up(
    services: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="Start only these services (repeatable).")
    ] = None,
    replicas: Annotated[
        list[str] | None, typer.Option("--replicas", help="SERVICE=N replicas of a service (repeatable).")
    ] = None,
) -> None:
    """Start NATS and Redis (if none answers at the configured URLs), then every service as its own process.

    Logs of all services are merged into this terminal. Ctrl-C stops everything and leaves no process behind.
    """
    from stratus.supervisor import Supervisor, wait_healthy

    settings = CommonSettings()
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

    sup = Supervisor(str(settings.nats_url), str(settings.redis_url), services=chosen, replicas=counts)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sup.ensure_infrastructure()
        sup.start_services()
        replies = asyncio.run(wait_healthy(sup.nats_url, chosen, timeout=15))
        healthy = [s for s in chosen if any(r.ok for r in replies.get(s, []))]
        console.print(
            f"[bold]supervisor  {len(healthy)}/{len(chosen)} services healthy[/] "
            f"(nats {sup.nats_url}, redis {sup.redis_url}); Ctrl-C to stop"
        )
        while not stopping:
            dead = sup.exited()
            if dead:
                console.print(f"[red]supervisor  service(s) exited: {dead}; stopping everything[/]")
                break
            time.sleep(0.2)
    finally:
        console.print("supervisor  stopping services")
        sup.stop()
        console.print("supervisor  stopped")


@app.command()
def status(
    nats_url: Annotated[str | None, typer.Option(help="NATS URL (default: STRATUS_NATS_URL).")] = None,
    wait: Annotated[float, typer.Option(help="Wait up to this many seconds for every service to be healthy.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Ask every service for its health over NATS; exit 1 unless all are healthy."""
    from stratus.supervisor import gather_health, health_json, wait_healthy

    url = nats_url or str(CommonSettings().nats_url)
    try:
        replies = asyncio.run(wait_healthy(url, timeout=wait) if wait > 0 else gather_health(url))
    except Exception as exc:
        console.print(f"[red]cannot reach NATS at {url}: {exc!r}[/]")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(health_json(replies))
    else:
        table = Table("service", "replicas", "healthy", "uptime (s)", "details")
        for s in SERVICES:
            rs = replies.get(s, [])
            ok = [r for r in rs if r.ok]
            table.add_row(
                s,
                str(len(rs)),
                "[green]yes[/]" if ok else "[red]no[/]",
                ", ".join(f"{r.uptime_s:.0f}" for r in rs) or "-",
                "; ".join(f"{k}={v}" for r in rs for k, v in r.details.items()) or "-",
            )
        console.print(table)
    if not all(any(r.ok for r in replies.get(s, [])) for s in SERVICES):
        raise typer.Exit(1)


incidents_app = typer.Typer(help="The audit trail: incidents and their timelines, from the event stream.")
app.add_typer(incidents_app, name="incidents")


@incidents_app.command("list")
def incidents_list(
    nats_url: Annotated[str | None, typer.Option(help="NATS URL (default: STRATUS_NATS_URL).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every incident on record: scope, state, outcome, attempts."""
    from stratus.audit import incidents

    summaries = asyncio.run(_with_bus(nats_url, incidents))
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
    nats_url: Annotated[str | None, typer.Option(help="NATS URL (default: STRATUS_NATS_URL).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the events as JSON.")] = False,
) -> None:
    """One incident's full timeline: detection, diagnosis, each transaction with its mu-paths, the outcome."""
    from stratus.audit import describe, timeline

    events = asyncio.run(_with_bus(nats_url, lambda bus: timeline(bus, incident_id)))
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


async def _with_bus(nats_url: str | None, fn: Callable[[Bus], Awaitable[T]]) -> T:
    url = nats_url or str(CommonSettings().nats_url)
    bus = await Bus.connect(url, name="stratus-cli")
    try:
        return await fn(bus)
    finally:
        await bus.close()


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
