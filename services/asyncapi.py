"""The AsyncAPI document of the whole system, generated from the services' own wiring: ``stratus asyncapi``.

Each service is built exactly as it runs (``services.<name>.app.build``), without connecting to anything, and
FastStream's generator reads what its broker consumes (subject, durable consumer, the contract its handler takes) and
what it declares it publishes (``ServiceRuntime.publishes``). Message and field descriptions come from the pydantic
contracts in ``stratus.contracts``. The topology (subject prefix, partitions) is the one the settings give, so the
document describes the install it is run for.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml as pyyaml
from faststream.specification import AsyncAPI

from services.bridge.app import build as build_bridge
from services.coordinator.app import build as build_coordinator
from services.detector.app import build as build_detector
from services.diagnoser.app import build as build_diagnoser
from services.mitigator.app import build as build_mitigator
from services.undoer.app import build as build_undoer
from stratus import __version__
from stratus.settings import (
    BridgeSettings,
    CoordinatorSettings,
    DetectorSettings,
    DiagnoserSettings,
    MitigatorSettings,
    UndoerSettings,
)

DESCRIPTION = (
    "Stratus: autonomous SRE for Kubernetes. Six services over NATS JetStream: the bridge turns Alertmanager "
    "webhooks into alerts; the detector opens incidents; the coordinator runs each incident's state machine "
    "(consuming the events stream, one serial partition per replica lease) and sends work to the diagnoser, the "
    "mitigator and the undoer, which answer with incident events. Every write is journaled before it runs. What a "
    "service drops lands in the dead-letter stream with the reason."
)


def specification() -> Any:
    """FastStream's AsyncAPI 3.0 specification object for every service of this install."""
    logging.disable(logging.WARNING)  # building a service warns about its settings; not the document's business
    try:
        runtimes = _build_all()
    finally:
        logging.disable(logging.NOTSET)
    return AsyncAPI(
        *(r.bus.broker for r in runtimes),
        title="Stratus",
        version=__version__,
        description=DESCRIPTION,
        schema_version="3.0.0",
    ).to_specification()


def _build_all() -> list[Any]:
    return [
        build_bridge(BridgeSettings()),
        build_detector(DetectorSettings()),
        build_coordinator(CoordinatorSettings()),
        build_diagnoser(DiagnoserSettings()),
        build_mitigator(MitigatorSettings()),
        build_undoer(UndoerSettings()),
    ]


def document() -> dict[str, Any]:
    """The AsyncAPI document as plain JSON data."""
    return dict(json.loads(specification().to_json()))


app = typer.Typer(help="The AsyncAPI document of every subject and message, generated from the code.")


@app.callback(invoke_without_command=True)
def asyncapi(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write it to this file (default: stdout).")] = None,
    yaml: Annotated[bool, typer.Option("--yaml", help="YAML instead of JSON.")] = False,
    serve: Annotated[
        int | None, typer.Option("--serve", help="Serve it as an HTML page on this port (127.0.0.1) until Ctrl-C.")
    ] = None,
) -> None:
    """Print, write or serve the AsyncAPI 3.0 document of this install (STRATUS_SUBJECT_PREFIX and friends apply)."""
    spec = specification()
    if serve is not None:
        from faststream.specification.asyncapi.site import serve_app

        typer.echo(f"AsyncAPI of Stratus on http://127.0.0.1:{serve}/ (Ctrl-C to stop)")
        serve_app(spec, "127.0.0.1", serve)
        return
    data = json.loads(spec.to_json())  # keys sorted: the same code gives the same document, byte for byte
    text = (
        pyyaml.safe_dump(data, sort_keys=True, allow_unicode=True, width=120)
        if yaml
        else json.dumps(data, indent=2, sort_keys=True)
    )
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}", err=True)
