"""The image catalogue (``images.yaml``) as typed data: images -> binaries -> programs.

A program says what a binary listens on, what it needs at start-up and what each of its operations calls. Addresses
and ports may reference the image's baked-in configuration as ``{Key}``; a container env var of the same name wins.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

HERE = Path(__file__).parent


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listen(_Strict):
    port: str = Field(description="Port the binary listens on; may be a {ConfigKey} reference.")
    protocol: str = Field(description="Wire protocol (http, grpc, thrift, mongodb, memcached, redis, tcp).")


class StartupStep(_Strict):
    kind: Literal["mongodb", "consul", "redis", "postgres"] = Field(
        description="What the binary connects to before it serves (redis: connect, then a SET/GET round trip; "
        "postgres: log in with the address's credentials)."
    )
    address: str = Field(description="host:port, may reference {ConfigKey}.")
    database: str | None = Field(None, description="MongoDB database the binary uses.")
    collection: str | None = Field(None, description="Collection touched by the start-up check.")
    user: str | None = Field(None, description="MongoDB user the binary authenticates as (None: no auth).")
    password: str | None = Field(None, description="Password of that user.")
    check: Literal["connect", "count", "index"] = Field(
        "connect", description="count: a read on the database (needs read); index: createIndex (needs write)."
    )
    on_fail: Literal["panic", "fatal", "retry"] = Field(
        description="panic: Go log.Panic (exit 2); fatal: log.Fatal (exit 1); retry: log every second, keep running "
        "without listening until it succeeds."
    )


class RetryPolicy(_Strict):
    """A caller's retry loop around one call: each attempt has its own deadline; an attempt that fails with
    DeadlineExceeded, Unavailable or ResourceExhausted is retried after an exponential back-off, up to
    ``max_attempts`` attempts in all. Every field may reference {ConfigKey}; a value that is not a positive number
    falls back to the image's baked one (Go's ``envInt`` with a fallback)."""

    timeout_ms: str = Field(description="Deadline of each attempt, in milliseconds.")
    max_attempts: str = Field(description="Attempts in all (1: no retry).")
    initial_backoff_ms: str = Field("0", description="Back-off before the second attempt, in milliseconds.")
    backoff_multiplier: str = Field("2", description="Each later back-off is the previous one times this.")
    error: str = Field(description="The error the caller returns once the attempts run out (a gRPC status line).")
    log: str = Field(description="Line the caller logs once the attempts run out ({code}: the last gRPC code).")
    metrics: str | None = Field(
        None, description="Prefix of the caller's counters (PREFIX_attempts_total, _timeouts_total, _failures_total)."
    )


class AdmissionQueue(_Strict):
    """A server that admits its requests through one FIFO queue drained at ``qps_limit`` requests per second; a
    request arriving while ``capacity`` requests wait is rejected at once with ResourceExhausted. A queued request is
    served even when its caller has given up on it (the server does not see the caller's deadline)."""

    qps_limit: str = Field(description="Requests served per second; may reference {ConfigKey}.")
    capacity: str = Field(description="Longest queue; may reference {ConfigKey}.")
    metrics: str | None = Field(
        None, description="Prefix of its gauges (PREFIX_queue_depth, _backend_qps_limit, _queue_capacity)."
    )


class Step(_Strict):
    """One thing an operation does: call another service or touch a backend."""

    call: str | None = Field(None, description="Callee: 'host:port' (via dns) or a consul name like srv-geo.")
    via: Literal["dns", "consul"] = Field("dns", description="How the callee is discovered.")
    operation: str | None = Field(None, description="The callee's operation.")
    mongodb: str | None = Field(None, description="MongoDB address (host:port).")
    memcached: str | None = Field(None, description="memcached address.")
    redis: str | None = Field(
        None, description="redis/valkey address: host:port, with StackExchange.Redis options (,password=...)."
    )
    postgres: str | None = Field(
        None, description="PostgreSQL connection string (postgres://user:pass@host/db or Host=..;Username=..)."
    )
    kafka: str | None = Field(None, description="Kafka bootstrap address: the step produces one record to topic.")
    topic: str | None = Field(None, description="Kafka topic of a kafka step.")
    database: str | None = Field(None, description="MongoDB database.")
    access: Literal["read", "write"] = Field("read", description="MongoDB access the step needs.")
    user: str | None = Field(None, description="MongoDB user (None: no auth).")
    password: str | None = Field(None, description="MongoDB password.")
    probability: float = Field(1.0, ge=0, le=1, description="Fraction of requests that take this step.")
    panics: bool = Field(
        False, description="A failure of this step crashes the process (Go: the error reaches log.Panic, exit 2)."
    )
    if_flag: str | None = Field(None, description="Taken only while this feature flag evaluates on (true or > 0).")
    unless_flag: str | None = Field(None, description="Taken only while this feature flag evaluates off.")
    copies_flag: str | None = Field(
        None, description="kafka: also produce as many copies of the record as this flag's number value."
    )
    forward_id: bool = Field(False, description="call: the callee gets the request's id (e.g. the product id).")
    retry: RetryPolicy | None = Field(None, description="call: the caller's per-attempt deadline and retries.")

    @property
    def kind(self) -> str:
        for k in ("call", "mongodb", "memcached", "redis", "postgres", "kafka"):
            if getattr(self, k):
                return k
        raise ValueError("step has no target")

    @property
    def address(self) -> str:
        return str(getattr(self, self.kind))


class FlagFault(_Strict):
    """Code the program runs while a feature flag evaluates on (true, or a number > 0); the flag's value comes from
    the flag service the process is configured with (``FLAGD_HOST``/``FLAGD_PORT``), see ``arena.behaviour.flags``."""

    flag: str = Field(description="Flag key.")
    effect: Literal["fail", "pause", "cpu_burn"] = Field(
        description="fail: the request fails; pause: the request stalls (e.g. forced garbage collections); "
        "cpu_burn: the process starts busy threads that run until a request sees the flag off."
    )
    probability: float = Field(1.0, ge=0, le=1, description="Share of the requests it applies to.")
    probability_from_value: bool = Field(False, description="The flag's number value is the share (0..1).")
    only_id: str | None = Field(None, description="Applies only to requests for this id (e.g. one product).")
    code: str = Field("Internal", description="fail: the gRPC status code.")
    error: str = Field("", description="fail: the status message.")
    pause_ms: float = Field(0.0, ge=0, description="pause: how long the request stalls (median, real ms).")
    threads: int = Field(0, ge=0, description="cpu_burn: busy threads.")
    log: str | None = Field(None, description="Line the program logs when it applies ({ms}: the pause).")


class Operation(_Strict):
    span: str = Field(description="Server span operation name (as the real tracer names it).")
    work_ms: float = Field(0.5, description="Own processing time in milliseconds.")
    faults: list[FlagFault] = Field(
        default_factory=list, description="Flag-guarded code paths, evaluated in order before the steps."
    )
    steps: list[Step] = Field(default_factory=list, description="Calls made, in order; any failure fails the op.")


class Consumer(_Strict):
    """A Kafka consumer loop: polls ``topic`` as ``group``, handles each record in offset order, commits after it."""

    broker: str = Field(description="Bootstrap address, may reference {ConfigKey}.")
    topic: str = Field(description="Topic it consumes (partition 0).")
    group: str = Field(description="Consumer group id; its committed offset lives in the broker.")
    validate_json: bool = Field(
        False,
        description="A record that is not a JSON object fails validation: the partition pauses at its offset "
        "(manual commit: nothing past it is committed, restarts re-read it).",
    )
    output_topic: str | None = Field(None, description="Each handled record is produced here.")
    sink: str | None = Field(None, description="PostgreSQL connection string each record is written to.")
    pause_log_every_s: float = Field(15.0, gt=0, description="Seconds between two 'paused' log lines.")
    delay_flag: str | None = Field(None, description="While this feature flag evaluates on, each record waits.")
    delay_s: float = Field(0.0, ge=0, description="The wait per record (real seconds) while delay_flag is on.")
    delay_log: str | None = Field(None, description="Line logged (at most every 5 s) while records wait.")


class Producer(_Strict):
    """A Kafka producer loop: one new record every ``every_s`` seconds."""

    broker: str = Field(description="Bootstrap address, may reference {ConfigKey}.")
    topic: str = Field(description="Topic it produces to.")
    every_s: float = Field(gt=0, description="Seconds between records (the arena's clock).")
    key_prefix: str = Field("ORD-", description="Prefix of the record ids.")


class FinalizerController(_Strict):
    """A controller loop that calls the Kubernetes API with its pod's ServiceAccount: every ``every_s`` seconds it
    lists the objects of ``resource`` matching ``selector`` and patches ``finalizer`` away from the terminating ones.
    Each call is authorised by the cluster's RBAC; a refused one is logged as the API's 403 answer."""

    resource: str = Field(description="Plural of a core resource, e.g. configmaps.")
    selector: str = Field(description="Label selector (key=value[,...]); may reference {ConfigKey}.")
    finalizer: str = Field(description="Finalizer it removes; may reference {ConfigKey}.")
    every_s: float = Field(2.0, gt=0, description="Seconds between two reconciliations (the arena's clock).")


class RequestFilter(_Strict):
    """A request filter evaluated on each request: ``param``'s value is matched against ``regex`` unless ``enabled``
    is ``false``. A regex with a nested quantifier (``(a+)*``) backtracks exponentially on an input it does not
    match: each such request pins the process's CPU, and requests behind it time out."""

    regex: str = Field(description="The rule's regex; may reference {ConfigKey}.")
    enabled: str = Field("true", description="'false' (case-insensitive) disables the rule; may reference {ConfigKey}.")
    param: str = Field(description="Query parameter the rule inspects.")


class HttpLoop(_Strict):
    """An HTTP client loop: GET ``url`` every ``every`` seconds (both may reference {arg:-n} or {arg:-1})."""

    every: str = Field(description="Seconds between two requests.")
    url: str = Field(description="URL requested (http://host:port/path?query).")


class Program(_Strict):
    style: Literal["go", "cpp", "nginx", "mongod", "plain", "grpc"] = Field(
        description="Logging style of the binary (grpc: a gRPC service in any language; its call errors are gRPC "
        "status lines and it logs them)."
    )
    source: str | None = Field(None, description="Source file named in Go log lines (main).")
    db_source: str | None = Field(None, description="Source file of the database initialisation (Go).")
    server: Literal["mongodb", "memcached", "redis", "consul", "postgres", "kafka"] | None = Field(
        None, description="Backend it serves."
    )
    listens: list[Listen] = Field(default_factory=list)
    registers: str | None = Field(None, description="Name it registers in consul (e.g. srv-geo).")
    tracer: str | None = Field(None, description="Jaeger service name of its spans.")
    startup: list[StartupStep] = Field(default_factory=list)
    routes: dict[str, str] = Field(default_factory=dict, description="HTTP path -> operation (front ends).")
    operations: dict[str, Operation] = Field(default_factory=dict)
    runs_for_arg: bool = Field(
        False,
        description="Its first argument is how long it runs (sleep): 'infinity' never exits, so as an init "
        "container it never completes; a number of seconds completes (at once, on the arena's clock).",
    )
    waits_for_lookup: bool = Field(
        False,
        description="A shell (sh -c SCRIPT) whose script is a wait loop on a name lookup (until nslookup NAME; do "
        "...; sleep N; done): it keeps running while NAME does not resolve from the pod, and exits 0 once it does; "
        "a script without such a loop completes at once.",
    )
    warmup_s: float = Field(
        0.0, ge=0, description="Seconds after start during which its HTTP endpoints answer 503 (warming up)."
    )
    memory_mi: float = Field(
        16.0, ge=0, description="Resident memory once serving (MiB): a lower container memory limit OOM-kills it."
    )
    consumer: Consumer | None = Field(None, description="A Kafka consumer loop the process runs.")
    serves_flags: bool = Field(
        False, description="A flag service (flagd): evaluates flags from the file its --uri file: argument names."
    )
    health_flag: str | None = Field(
        None, description="Its gRPC health service answers NOT_SERVING while this feature flag evaluates on."
    )
    producer: Producer | None = Field(None, description="A Kafka producer loop the process runs.")
    request_filter: RequestFilter | None = Field(None, description="A regex filter on each HTTP request.")
    queue: AdmissionQueue | None = Field(None, description="The rate-limited queue its requests wait in.")
    requests_metric: str | None = Field(
        None, description="Name of the counter of the requests its operations received (e.g. search_requests_total)."
    )
    http_loop: HttpLoop | None = Field(None, description="An HTTP client loop the process runs.")
    finalizer_controller: FinalizerController | None = Field(
        None, description="A Kubernetes controller loop the process runs (API calls under the pod's RBAC)."
    )

    def operation_for(self, path: str) -> str | None:
        """The operation serving ``path`` (query ignored): its exact route, else the longest route ending in "/"
        that prefixes it (Envoy's prefix match, Next.js dynamic API routes). The root "/" is a page of its own, not
        a prefix of every path: an unknown path such as /healthz is a 404."""
        route = path.split("?", 1)[0]
        if route in self.routes:
            return self.routes[route]
        prefixes = [r for r in self.routes if r != "/" and r.endswith("/") and route.startswith(r)]
        return self.routes[max(prefixes, key=len)] if prefixes else None


class Image(_Strict):
    shell: bool = Field(False, description="Whether the image has /bin/sh.")
    entrypoint: str | None = Field(None, description="Binary run when the container has no command.")
    config: dict[str, str] = Field(default_factory=dict, description="Configuration baked into the image.")
    binaries: dict[str, str] = Field(description="Binary name -> program.")
    tools: list[str] = Field(default_factory=list, description="Extra executables (e.g. the mongo shell).")
    config_file: str | None = Field(
        None,
        description="Path of the JSON file the baked configuration lives in; a ConfigMap mounted over it "
        "replaces the configuration the process reads at start-up.",
    )


class Catalogue(_Strict):
    programs: dict[str, Program]
    images: dict[str, Image]
    hotel_config: dict[str, str] = Field(default_factory=dict, description="Shared anchor, unused directly.")

    def image(self, ref: str) -> Image | None:
        return self.images.get(normalise_image(ref))


def normalise_image(ref: str) -> str:
    """``docker.io/library/mongo:4.4.6`` -> ``mongo:4.4.6``; no tag means ``:latest``."""
    ref = ref.strip()
    for prefix in ("docker.io/", "index.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
    if ref.startswith("library/"):
        ref = ref[len("library/") :]
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        ref += ":latest"
    return ref


_REF = re.compile(r"\{(\w+)\}")


def expand(template: str, config: dict[str, str]) -> str:
    """Replace ``{Key}`` by the configuration's value (unknown keys stay as written)."""
    return _REF.sub(lambda m: config.get(m.group(1), m.group(0)), template)


@cache
def load_catalogue(path: Path = HERE / "images.yaml") -> Catalogue:
    """The catalogue in ``path``, plus the ``images.<app>.yaml`` files beside it (one per app that keeps its own)."""
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    for extra in sorted(path.parent.glob(f"{path.stem}.*.yaml")):
        more: dict[str, Any] = yaml.safe_load(extra.read_text()) or {}
        for section in ("programs", "images"):
            clash = set(data.get(section) or {}) & set(more.get(section) or {})
            if clash:
                raise ValueError(f"{extra.name}: {section} {sorted(clash)} are already defined in {path.name}")
            data.setdefault(section, {}).update(more.get(section) or {})
    return Catalogue.model_validate(data)
