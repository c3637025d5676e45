"""Logs and traces of every service: JSON log lines that carry the service, incident and transaction, and
OpenTelemetry spans that follow a piece of work from one service to the next.

Why context variables: a handler deep in the engine logs ``"%s: attempt %d"`` without knowing which message it is
working for. The bus sets ``incident_id`` and ``tx_id`` (from the message being handled) in context variables for the
duration of the handler, and a logging filter copies them into every record. The same values become attributes of
the handler's span, so a trace and a log line of one incident are found by the same id.

Traces: the bus runs FastStream's NATS telemetry middleware, which opens a span per message consumed and published
and carries the trace context in the message headers, so a trace goes detector -> coordinator -> diagnoser -> ...
Tracing is on when ``STRATUS_OTLP_ENDPOINT`` names a collector (OTLP over HTTP); then every log line also carries the
``trace_id``. Off (the default), no span is made: spans cost CPU on every message and would go nowhere.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from stratus.scrub import ScrubFilter

SERVICE: ContextVar[str] = ContextVar("stratus_service", default="")
INSTANCE: ContextVar[str] = ContextVar("stratus_instance", default="")
INCIDENT_ID: ContextVar[str | None] = ContextVar("stratus_incident_id", default=None)
TX_ID: ContextVar[str | None] = ContextVar("stratus_tx_id", default=None)

_TEXT_FORMAT = "%(asctime)s %(service)-11s %(levelname)-5s %(message)s"


class ContextFilter(logging.Filter):
    """Adds ``service``, ``instance``, ``incident_id``, ``tx_id`` and ``trace_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = SERVICE.get()
        record.instance = INSTANCE.get()
        record.incident_id = INCIDENT_ID.get()
        record.tx_id = TX_ID.get()
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        incident = getattr(record, "incident_id", None)
        return line if not incident or incident in record.getMessage() else f"{line} [{incident}]"


def log_handler(fmt: str = "json", stream: Any = None) -> logging.Handler:
    """A handler writing JSON lines (``fmt="json"``) or readable text, with the context fields, to ``stream``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(ScrubFilter())  # messages, URLs and tracebacks without credentials (stratus.scrub)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(instance)s %(incident_id)s %(tx_id)s "
                "%(trace_id)s",
                rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(_TextFormatter(_TEXT_FORMAT, datefmt="%H:%M:%S"))
    return handler


def configure_logging(level: str, service: str, fmt: str = "json", instance: str = "") -> None:
    """One handler on stderr for the whole process: JSON lines (``fmt="json"``) or readable text."""
    SERVICE.set(service)
    INSTANCE.set(instance)
    handler = log_handler(fmt)
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)
    logging.getLogger("faststream").setLevel(logging.WARNING)  # "Received"/"Processed" per message: noise


@contextlib.contextmanager
def work_context(incident_id: str | None, tx_id: str | None, service: str | None = None) -> Iterator[None]:
    """Set the incident and transaction (and the service) for the logs and the current span while a handler runs."""
    t1, t2 = INCIDENT_ID.set(incident_id), TX_ID.set(tx_id)
    t3 = SERVICE.set(service) if service else None
    span = trace.get_current_span()
    if incident_id:
        span.set_attribute("incident_id", incident_id)
    if tx_id:
        span.set_attribute("tx_id", tx_id)
    try:
        yield
    finally:
        INCIDENT_ID.reset(t1)
        TX_ID.reset(t2)
        if t3 is not None:
            SERVICE.reset(t3)


def ids_of(body: Any) -> tuple[str | None, str | None]:
    """``incident_id`` and ``tx_id`` of a message body (a model or a decoded JSON object), if it names them."""
    if isinstance(body, dict):
        get = body.get
    else:

        def get(key: str, default: Any = None) -> Any:
            return getattr(body, key, default)

    incident, tx = get("incident_id"), get("tx_id")
    return (incident if isinstance(incident, str) else None, tx if isinstance(tx, str) else None)


_provider: TracerProvider | None = None


def tracer_provider(
    service: str, instance: str = "", otlp_endpoint: str | None = None, processor: SpanProcessor | None = None
) -> TracerProvider:
    """The process's tracer provider (created once, and installed as the global one).

    ``otlp_endpoint`` adds a batching OTLP/HTTP exporter; ``processor`` adds any other span processor (tests use an
    in-memory exporter).
    """
    global _provider
    if _provider is None:
        _provider = TracerProvider(
            resource=Resource.create({"service.name": f"stratus-{service}", "service.instance.id": instance or service})
        )
        trace.set_tracer_provider(_provider)
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    if processor is not None:
        _provider.add_span_processor(processor)
    return _provider


def shutdown_tracing() -> None:
    """Flush spans still buffered for the exporter (on stop)."""
    if _provider is not None:
        with contextlib.suppress(Exception):
            _provider.force_flush(timeout_millis=2000)
