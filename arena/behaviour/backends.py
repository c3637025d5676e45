"""The Astronomy Shop's data stores wired into the cluster: which store a client reaches, whether it gets in, and the
loops that run inside consumers and producers.

Why it is shaped this way: every answer goes through ``World.connect`` from the client's pod (DNS, Service,
endpoints, policies), then asks the store's own state (``arena.behaviour.datastores``) whether this client, with
the credentials its process holds, may do what it asks. A store's state lives with the storage behind its data
directory (``World.storage_key``): a container without a volume starts empty after every restart, as on a node.

Env resolution (``resolve_env``) is done once when the kubelet starts a container, as the kubelet does: a Secret or
ConfigMap key read through ``valueFrom`` is a copy, so rotating the Secret does not reach a running process until
its container restarts; duplicate names resolve in order and the last one wins.
"""

from __future__ import annotations

import json
from typing import Any

from arena.behaviour.datastores import (
    KafkaState,
    PostgresState,
    ValkeyState,
    kafka_tool,
    parse_postgres,
    parse_redis_address,
    piped_stdin,
    psql,
    valid_record,
    valkey_cli,
)
from arena.behaviour.world import Landed, Process, Refused, World, meta, pod_key
from arena.hooks import ClusterView, ExecResult, Obj

DATA_DIRS = {"redis": "/data", "postgres": "/var/lib/postgresql/data", "kafka": "/var/lib/kafka/data"}
KAFKA_TOOLS = ("kafka-topics", "kafka-consumer-groups", "kafka-console-producer", "kafka-console-consumer")


# ------------------------------------------------------------------------------------------------------ env
def resolve_env(view: ClusterView, pod: Obj, container: Obj) -> dict[str, str]:
    """The container's environment as the kubelet builds it at start: ``envFrom`` first, then ``env`` in order
    (later duplicates win); ``valueFrom`` reads the Secret/ConfigMap key or the pod field now."""
    ns = meta(pod).get("namespace")
    out: dict[str, str] = {}
    for ef in container.get("envFrom") or []:
        prefix = str(ef.get("prefix") or "")
        for ref_key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = ef.get(ref_key)
            if ref:
                for k, v in _data(view.get(kind, ns, str(ref.get("name") or "")), kind).items():
                    out[prefix + k] = v
    for env in container.get("env") or []:
        name = str(env.get("name") or "")
        if not name:
            continue
        if "value" in env:
            out[name] = str(env.get("value") or "")
            continue
        src = env.get("valueFrom") or {}
        for ref_key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = src.get(ref_key)
            if ref:
                value = _data(view.get(kind, ns, str(ref.get("name") or "")), kind).get(str(ref.get("key") or ""))
                if value is not None:
                    out[name] = value
        field_ref = (src.get("fieldRef") or {}).get("fieldPath")
        if field_ref:
            out[name] = _pod_field(pod, str(field_ref))
        if "valueFrom" not in env and "value" not in env:
            out[name] = ""
    return out


def _data(obj: Obj | None, kind: str) -> dict[str, str]:
    if obj is None:
        return {}
    data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
    if kind == "Secret":
        import base64
        import binascii

        decoded = {}
        for k, v in data.items():
            try:
                decoded[k] = base64.b64decode(v, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded[k] = v
        data = decoded
        data.update({str(k): str(v) for k, v in (obj.get("stringData") or {}).items()})
    return data


def _pod_field(pod: Obj, path: str) -> str:
    m, spec, st = meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    return str(
        {
            "metadata.name": m.get("name"),
            "metadata.namespace": m.get("namespace"),
            "metadata.uid": m.get("uid"),
            "spec.nodeName": spec.get("nodeName"),
            "spec.serviceAccountName": spec.get("serviceAccountName"),
            "status.podIP": st.get("podIP"),
            "status.hostIP": st.get("hostIP"),
        }.get(path)
        or ""
    )


# ------------------------------------------------------------------------------------------------------ state
def store_state(world: World, pod: Obj, container: Obj, server: str) -> Any:
    key = f"{server}:" + world.storage_key(pod, container, DATA_DIRS[server])
    stores = world.rt.stores
    if key not in stores:
        stores[key] = {"redis": ValkeyState, "postgres": PostgresState, "kafka": KafkaState}[server]()
    state = stores[key]
    if server == "postgres" and not state.initialised:
        _initdb(world, pod, container, state)
    return state


def _initdb(world: World, pod: Obj, container: Obj, state: PostgresState) -> None:
    """The postgres image's entrypoint on an empty data directory: the superuser from env, then every ``*.sql`` of
    the ConfigMap mounted at /docker-entrypoint-initdb.d, in name order."""
    env = world.rt.env_at_start.get(
        (pod_key(pod), str(container.get("name")), world.rt.instance(pod, str(container.get("name"))))
    )
    env = env if env is not None else {str(e.get("name")): str(e.get("value", "")) for e in container.get("env") or []}
    superuser = env.get("POSTGRES_USER") or "postgres"
    state.roles[superuser] = env.get("POSTGRES_PASSWORD") or None
    state.databases["postgres"] = superuser
    state.databases.setdefault(env.get("POSTGRES_DB") or superuser, superuser)
    ns = meta(pod).get("namespace")
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        if str(mount.get("mountPath", "")).rstrip("/") != "/docker-entrypoint-initdb.d":
            continue
        ref = (volumes.get(mount.get("name")) or {}).get("configMap") or {}
        cm = world.view.get("ConfigMap", ns, str(ref.get("name") or "")) or {}
        for name, script in sorted((cm.get("data") or {}).items()):
            if name.endswith(".sql"):
                _, err = state.run_sql(str(script))
                if err:
                    world.rt.log(pod, str(container.get("name")), f"psql:/docker-entrypoint-initdb.d/{name}: {err}")
    state.initialised = True


def _land(world: World, pod: Obj, address: str, server: str) -> Landed | str:
    ns = str(meta(pod).get("namespace"))
    conn = world.connect(pod, ns, address)
    if isinstance(conn, Refused):
        return conn.detail or conn.kind
    if conn.process.program.server != server:
        return f"dial tcp {address}: unexpected protocol response"
    return conn


# ------------------------------------------------------------------------------------------------------ clients
def redis_call(world: World, pod: Obj, address: str) -> str | None:
    """One command of a StackExchange.Redis client: None, or the error the client sees."""
    hostport, password = parse_redis_address(address)
    conn = _land(world, pod, hostport, "redis")
    if isinstance(conn, str):
        return f"It was not possible to connect to the redis server(s). UnableToConnect on {hostport}: {conn}"
    state: ValkeyState = store_state(world, conn.pod, conn.container, "redis")
    return state.auth_error(password)


def postgres_call(world: World, pod: Obj, conn_string: str) -> str | None:
    """One query of a pooled client (pgx, Npgsql, psycopg): None, or the error it sees."""
    target = parse_postgres(conn_string)
    if target is None:
        return "cannot parse the connection string"
    conn = _land(world, pod, target.address, "postgres")
    if isinstance(conn, str):
        return f"failed to connect to `host={target.host} user={target.user} database={target.database}`: {conn}"
    denied = store_state(world, conn.pod, conn.container, "postgres").login(
        target.user, target.password, target.database
    )
    if denied:
        server_line = f'{denied}\nDETAIL:  Connection matched file "/var/lib/postgresql/data/pg_hba.conf" line 128'
        world.rt.log(conn.pod, str(conn.container.get("name")), server_line)
        reason = denied.removeprefix("FATAL:  ")
        return (
            f"failed to connect to `host={target.host} user={target.user} database={target.database}`: "
            f"server error (FATAL: {reason} (SQLSTATE 28P01))"
        )
    return None


def kafka_produce(world: World, pod: Obj, address: str, topic: str, value: str) -> str | None:
    conn = _land(world, pod, address, "kafka")
    if isinstance(conn, str):
        return f"kafka: client has run out of available brokers to talk to: {conn}"
    store_state(world, conn.pod, conn.container, "kafka").produce(topic, value)
    return None


def store_step(world: World, conn: Landed, kind: str, address: str, topic: str | None, copies: int = 0) -> str | None:
    """A request's step on a data store (``postgres`` or ``kafka``): None or the client's error, which the client
    also logs. ``copies``: the record is produced that many more times (a flag-driven overload)."""
    if kind == "postgres":
        error = postgres_call(world, conn.pod, address)
    else:
        order = {"order_id": f"{world.rt.rng.randrange(16**8):08x}", "service": conn.process.program.tracer}
        error = kafka_produce(world, conn.pod, address, topic or "orders", json.dumps(order))
        if error is None and copies > 0:
            name = str(conn.container.get("name"))
            world.rt.log(conn.pod, name, f"feature flag on: producing {copies} more copies of the order to {topic}")
            for _ in range(copies):
                kafka_produce(world, conn.pod, address, topic or "orders", json.dumps(order))
    if error is not None:
        world.rt.log(conn.pod, str(conn.container.get("name")), f"error: {error}")
    return error


def startup_check(world: World, pod: Obj, kind: str, address: str) -> str | None:
    """A start-up step on a store: redis connects and runs a SET/GET round trip; postgres logs in."""
    if kind == "redis":
        return redis_call(world, pod, address)
    return postgres_call(world, pod, address)


# ------------------------------------------------------------------------------------------------------ loops
def tick(world: World, pod: Obj, container: Obj, proc: Process) -> None:
    """Run the process's producer and consumer loops up to now (called on every kubelet pass over it)."""
    name = str(container.get("name"))
    key = (pod_key(pod), name, str(world.rt.instance(pod, name)))
    now = world.rt.clock()
    marks = world.rt.loop_marks
    if proc.program.producer is not None:
        p = proc.program.producer
        last = marks.setdefault((*key, "produced"), now)
        due = min(int((now - last) / p.every_s), 50)
        for _ in range(due):
            broker = _expand(p.broker, proc)
            conn = _land(world, pod, broker, "kafka")
            if isinstance(conn, str):
                world.rt.log(pod, name, f"producer error: {broker}: {conn}")
                break
            state: KafkaState = store_state(world, conn.pod, conn.container, "kafka")
            n = len(state.topics.get(p.topic, []))
            record = {"order_id": f"{p.key_prefix}{100000 + n}", "amount": round(10 + (n * 7.31) % 90, 2)}
            state.produce(p.topic, json.dumps(record))
            world.rt.log(pod, name, f"produced {record['order_id']} to {p.topic}")
        marks[(*key, "produced")] = last + due * p.every_s
    if proc.program.consumer is not None:
        _consume(world, pod, name, key, proc, now)


def _consume(world: World, pod: Obj, name: str, key: tuple[str, str, str], proc: Process, now: float) -> None:
    c = proc.program.consumer
    assert c is not None
    broker = _expand(c.broker, proc)
    conn = _land(world, pod, broker, "kafka")
    if isinstance(conn, str):
        _log_every(world, pod, name, (*key, "down"), now, 5.0, f"consumer error: {broker}: {conn}")
        return
    state: KafkaState = store_state(world, conn.pod, conn.container, "kafka")
    records = state.topics.get(c.topic)
    if records is None:
        msg = f"Subscribed topic not available: {c.topic}: Broker: Unknown topic or partition"
        _log_every(world, pod, name, (*key, "topic"), now, 5.0, msg)
        return
    offset = state.groups.setdefault((c.group, c.topic), 0)
    budget = len(records) - offset
    if c.delay_flag and budget > 0:
        budget = _delayed_budget(world, pod, name, key, proc, now, budget)
    while offset < len(records) and budget > 0:
        budget -= 1
        value = records[offset]
        if c.validate_json and not valid_record(value):
            lines = [
                f"record validation failed at offset={offset}: {value[:80]}",
                f"partition processing paused at offset={offset}",
            ]
            _log_every(world, pod, name, (*key, "paused"), now, c.pause_log_every_s, *lines)
            return
        if c.sink is not None:
            err = postgres_call(world, pod, _expand(c.sink, proc))
            if err:
                _log_every(world, pod, name, (*key, "sink"), now, 5.0, f"failed to store order: {err}")
                return
        if c.output_topic:
            try:
                doc = json.loads(value)
            except ValueError:
                doc = {"raw": value}
            body = (
                {**doc, "source_offset": offset} if isinstance(doc, dict) else {"value": doc, "source_offset": offset}
            )
            state.produce(c.output_topic, json.dumps(body))
        offset += 1
        state.groups[(c.group, c.topic)] = offset


def _delayed_budget(
    world: World, pod: Obj, name: str, key: tuple[str, str, str], proc: Process, now: float, pending: int
) -> int:
    """Records the consumer may handle now: while its delay flag is on, each record waits ``delay_s`` (real
    seconds, on the arena's clock) before it is handled, so a burst becomes lag."""
    from arena.behaviour import flags

    c = proc.program.consumer
    assert c is not None and c.delay_flag
    mark = (*key, "delay")
    if not flags.truthy(flags.evaluate(world, pod, proc, c.delay_flag, 0)):
        world.rt.loop_marks.pop(mark, None)
        return pending
    step = max(c.delay_s * world.rt.probe_scale, 1e-6)
    since = world.rt.loop_marks.setdefault(mark, now)
    budget = min(int((now - since) / step), pending)
    world.rt.loop_marks[mark] = since + budget * step if budget < pending else now
    if c.delay_log:
        _log_every(world, pod, name, (*key, "delay-log"), now, 5.0, c.delay_log)
    return budget


def _log_every(world: World, pod: Obj, name: str, mark: tuple[str, ...], now: float, every: float, *lines: str) -> None:
    last = world.rt.loop_marks.get(mark)
    if last is not None and now - last < every:
        return
    world.rt.loop_marks[mark] = now
    for line in lines:
        world.rt.log(pod, name, line)


def _expand(template: str, proc: Process) -> str:
    from arena.apps.catalogue import expand

    return expand(template, proc.config)


def active_members(world: World, namespace_pods: list[Obj]) -> dict[str, int]:
    """Live members per consumer group: running consumer processes (any namespace given) that reach a broker."""
    out: dict[str, int] = {}
    for pod in namespace_pods:
        for c in (pod.get("spec") or {}).get("containers") or []:
            proc = world.serving(pod, c)
            if proc is None or proc.program.consumer is None:
                continue
            group = proc.program.consumer.group
            out[group] = out.get(group, 0) + 1
    return out


# ------------------------------------------------------------------------------------------------------ tools
def exec_tool(world: World, pod: Obj, container: Obj, proc: Process, command: list[str]) -> ExecResult | None:
    """``kubectl exec`` of a store's tool in its own container (None: not a store tool of this image)."""
    stdin = ""
    argv = command
    if len(command) >= 3 and command[0].rsplit("/", 1)[-1] in ("sh", "bash") and command[1] == "-c":
        piped = piped_stdin(command[2])
        if piped is not None:
            stdin, argv = piped
    if not argv:
        return None
    exe = argv[0].rsplit("/", 1)[-1]
    tool = exe.removesuffix(".sh")
    if exe not in proc.image.tools and tool not in proc.image.tools:
        return None
    server = proc.program.server
    if server is None or world.serving(pod, container) is None:
        return ExecResult(stderr=f"{exe}: could not connect to the server in this container\n", exit_code=1)
    if exe in ("valkey-cli", "redis-cli") and server == "redis":
        out, err, code = valkey_cli(store_state(world, pod, container, "redis"), argv)
    elif exe == "psql" and server == "postgres":
        out, err, code = psql(store_state(world, pod, container, "postgres"), argv)
    elif tool in KAFKA_TOOLS and server == "kafka":
        pods = world.view.list("Pod")
        out, err, code = kafka_tool(
            store_state(world, pod, container, "kafka"), argv, active_members(world, pods), stdin
        )
    else:
        return None
    return ExecResult(stdout=out, stderr=err, exit_code=code)


# ------------------------------------------------------------------------------------------------------ metrics
KAFKA_SERIES = {
    "kafka_topic_partition_current_offset": "Log end offset of a topic partition.",
    "kafka_consumergroup_current_offset": "Committed offset of a consumer group on a partition.",
    "kafka_consumergroup_lag": "Records of a partition the consumer group has not committed yet.",
}


def kafka_metrics(view: ClusterView, rt: Any) -> list[str]:
    """kafka-exporter's series for every running broker: each topic's end offset, and each group's committed offset
    and lag (partition 0), labelled with the broker's namespace."""
    world = World(view, rt)
    series: dict[str, list[str]] = {name: [] for name in KAFKA_SERIES}
    for pod in view.list("Pod"):
        for c in (pod.get("spec") or {}).get("containers") or []:
            proc = world.serving(pod, c)
            if proc is None or proc.program.server != "kafka":
                continue
            state: KafkaState = store_state(world, pod, c, "kafka")
            ns = str(meta(pod).get("namespace"))
            for topic, records in sorted(state.topics.items()):
                labels = f'namespace="{ns}",topic="{topic}",partition="0"'
                series["kafka_topic_partition_current_offset"].append(f"{{{labels}}} {len(records)}")
            for (group, topic), offset in sorted(state.groups.items()):
                labels = f'namespace="{ns}",consumergroup="{group}",topic="{topic}",partition="0"'
                lag = max(len(state.topics.get(topic, [])) - offset, 0)
                series["kafka_consumergroup_current_offset"].append(f"{{{labels}}} {offset}")
                series["kafka_consumergroup_lag"].append(f"{{{labels}}} {lag}")
    lines: list[str] = []
    for name, rows in series.items():
        if rows:
            lines += [f"# HELP {name} {KAFKA_SERIES[name]}", f"# TYPE {name} gauge", *(name + r for r in rows)]
    return lines
