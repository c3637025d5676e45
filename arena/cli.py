"""``stratus arena ...``: serve the emulated cluster, benchmark its API.

Other arena parts add sub-commands without editing this file: a module ``arena/cli_apps.py`` that defines a typer
app named ``app`` is mounted here when it exists (its commands appear next to ``serve``), and any module may call
``register(typer_app, name)`` at import time.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="arena",
    help="The arena: an emulated Kubernetes cluster to test and benchmark on.",
    no_args_is_help=True,
    add_completion=False,
)


def register(sub: typer.Typer, name: str | None = None) -> None:
    """Mount ``sub`` under ``stratus arena`` (as ``name``, or merged into this app when ``name`` is None)."""
    if name:
        app.add_typer(sub, name=name)
    else:
        for cmd in sub.registered_commands:
            app.registered_commands.append(cmd)
        for grp in sub.registered_groups:
            app.registered_groups.append(grp)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: a free one).")] = 6443,
    kubeconfig: Annotated[Path, typer.Option(help="Where to write the kubeconfig for kubectl.")] = Path(
        "arena.kubeconfig"
    ),
    nodes: Annotated[int, typer.Option(help="Number of Ready worker nodes (node-1..N).")] = 3,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log controller activity.")] = False,
) -> None:
    """Serve an emulated Kubernetes cluster until Ctrl-C; kubectl --kubeconfig KUBECONFIG talks to it."""
    from arena.server import ArenaServer

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = ArenaServer(host=host, port=port, nodes=nodes).start()
    path = server.write_kubeconfig(kubeconfig)
    print(f"arena serving the Kubernetes API on {server.url} with {nodes} nodes")
    print(f"kubeconfig: {path}   (try: kubectl --kubeconfig {path} get nodes)")
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    print("stopping")
    server.stop()


@app.command("bench-api")
def bench_api_cmd(
    url: Annotated[str | None, typer.Option(help="A running arena (default: start one in-process).")] = None,
    pods: Annotated[int, typer.Option(help="Pods to create for the list benchmark.")] = 50,
    rounds: Annotated[int, typer.Option(help="Requests per operation.")] = 200,
    clients: Annotated[int, typer.Option(help="Concurrent clients for the load phase (0: skip).")] = 4,
    seconds: Annotated[float, typer.Option(help="Duration of the load phase.")] = 5.0,
) -> None:
    """Latency of list (N pods), get, patch and create with the official Python client: p50/p99 in ms."""
    from arena.bench_api import main

    main(url=url, pods=pods, rounds=rounds, clients=clients, seconds=seconds)


for _mod in ("arena.cli_apps",):
    try:
        _extra = importlib.import_module(_mod)
    except ModuleNotFoundError as _exc:
        if _exc.name != _mod:
            raise
        continue
    if isinstance(getattr(_extra, "app", None), typer.Typer):
        register(_extra.app)
