"""The applications' behaviour, plugged into the kubelet through ``arena.hooks.Behaviour``.

Every answer is derived from the image catalogue and the cluster's state through ``World``: a container runs if its
image and binary exist; a Go service panics at start-up when its database is unreachable or refuses it, a C++ service
loops on its start-up step without listening, mongod keeps its users on its volume. Nothing here knows any fault or
scenario: a new fault written as a scenario file produces its symptoms from the same rules.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Iterable
from datetime import UTC, datetime

from arena.apps.catalogue import StartupStep, expand
from arena.behaviour import backends, dns, flags, logstyle, queueing
from arena.behaviour.mongo import MongoError, MongoState, Shell, ShellError, auth_failure_log, run_shell, split_command
from arena.behaviour.world import Landed, Process, ProcessError, Refused, Runtime, World, meta, pod_key, process_of
from arena.hooks import ClusterView, ExecResult, Obj, StartOutcome
from arena.objects import parse_quantity


class StartupFailure(Exception):
    def __init__(self, message: str, on_fail: str) -> None:
        super().__init__(message)
        self.on_fail = on_fail


class AppBehaviour:
    """The ``Behaviour`` of the arena's applications (HotelReservation, SocialNetwork and their backends)."""

    def __init__(self, runtime: Runtime | None = None) -> None:
        self.rt = runtime or Runtime()

    # -- start ---------------------------------------------------------------------------------------------------
    def start(self, view: ClusterView, pod: Obj, container: Obj) -> StartOutcome:
        name = str(container.get("name"))
        key = (pod_key(pod), name)
        self.rt.instances[key] = self.rt.instances.get(key, 0) + 1
        self.rt.started[key] = self.rt.clock()
        self.rt.logs.pop(key, None)
        env = backends.resolve_env(view, pod, container)
        self.rt.env_at_start[(key[0], name, self.rt.instances[key])] = env
        try:
            proc = process_of(self.rt.catalogue, container, env)
        except ProcessError as e:
            if e.kind == "pull_error":
                return StartOutcome("pull_error", message=str(e))
            if e.kind == "start_error":
                return StartOutcome("start_error", logs=[], exit_code=128, message=str(e))
            return StartOutcome("crash", logs=[], exit_code=128, message=str(e))
        world = World(view, self.rt)
        if world.paused(pod, name):
            return StartOutcome("running", logs=[])
        mounted = _mounted_config(world, pod, container, proc)
        if isinstance(mounted, str):
            return StartOutcome("crash", logs=[logstyle.go(proc, "FTL", 41, mounted)], exit_code=1)
        if mounted is not None:
            proc = mounted
        clash = self._port_clash(pod, container, proc)
        if clash is not None:
            return StartOutcome("crash", logs=[logstyle.bind_failure(proc, clash)], exit_code=1)
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is not None and _mebibytes(limit) < proc.program.memory_mi:
            # the cgroup's limit is below what the process needs once it serves: the kernel's OOM killer ends it
            return StartOutcome("crash", logs=logstyle.banner(proc), exit_code=137, message="OOMKilled")
        style = proc.program.style
        if proc.program.server in backends.DATA_DIRS:
            backends.store_state(world, pod, container, proc.program.server)  # the entrypoint's init, if empty
        if proc.program.server == "mongodb":
            return self._start_mongod(world, pod, container, proc)
        lines: list[str] = logstyle.banner(proc)
        for step in proc.program.startup:
            if step.on_fail == "retry":
                continue  # checked by the retry loop (periodic_logs), the process keeps running meanwhile
            address = expand(step.address, proc.config)
            lines += logstyle.before_step(proc, step, address)
            try:
                self._startup_step(world, pod, proc, step, address)
            except StartupFailure as e:
                lines += logstyle.failure(proc, step, str(e))
                return StartOutcome("crash", logs=lines, exit_code=2 if e.on_fail == "panic" else 1)
            lines += logstyle.after_step(proc, step, address)
        lines += logstyle.serving(proc)
        if proc.program.serves_flags:  # flagd reads its flag file at start (a subPath copy is frozen from now on)
            flags.served_flags(world, pod, container, proc)
        if proc.program.runs_for_arg and proc.args[:1] == ["infinity"]:
            return StartOutcome("running", logs=lines, keeps_running=True)
        if proc.program.waits_for_lookup:
            host = _lookup_target(proc.args)
            resolved, looked = _lookup(view, pod, host) if host is not None else ("", [])
            if resolved is None:
                return StartOutcome("running", logs=lines + looked, keeps_running=True)
            lines += looked
        if proc.program.runs_for_arg and proc.args[:1] and _seconds(proc.args[0]) is not None:
            return StartOutcome("running", logs=lines, exits=True)
        if style == "cpp" and not any(s.on_fail == "retry" for s in proc.program.startup):
            self.rt.serving.add((key[0], name, self.rt.instance(pod, name)))
        if any(s.on_fail == "retry" for s in proc.program.startup):
            self._retry_startup(world, pod, container, proc)
        return StartOutcome("running", logs=lines)

    def _startup_step(self, world: World, pod: Obj, proc: Process, step: StartupStep, address: str) -> None:
        ns = str(meta(pod).get("namespace"))
        if step.kind in ("redis", "postgres"):
            error = backends.startup_check(world, pod, step.kind, address)
            if error is not None:
                raise StartupFailure(error, step.on_fail)
            return
        if step.kind == "consul":
            conn = world.connect(pod, ns, address)
            if isinstance(conn, Refused):
                raise StartupFailure(
                    f'failed register: Put "http://{address}/v1/agent/service/register": {conn.detail}', step.on_fail
                )
            return
        self.mongo_session(
            world,
            pod,
            ns,
            address,
            step.database or "test",
            step.user,
            step.password,
            step.check,
            step.collection or "x",
            step.on_fail,
        )

    def mongo_session(
        self,
        world: World,
        pod: Obj,
        ns: str,
        address: str,
        database: str,
        user: str | None,
        password: str | None,
        check: str,
        collection: str,
        on_fail: str,
    ) -> None:
        """Dial a MongoDB as a driver does, then run the check (count: read, index: write). Raises StartupFailure."""
        conn = world.connect(pod, ns, address)
        if isinstance(conn, Refused) or conn.process.program.server != "mongodb":
            raise StartupFailure("no reachable servers", on_fail)
        mongod_pod, mongod_c, mproc = conn.pod, conn.container, conn.process
        remote = f"{(pod.get('status') or {}).get('podIP', '10.244.0.9')}:{40000 + self.rt.rng.randrange(20000)}"
        if _tls_required(mproc):
            self.rt.log(mongod_pod, str(mongod_c.get("name")), logstyle.mongod_tls_reject(remote))
            raise StartupFailure("no reachable servers", on_fail)
        state = world.mongo_state(mongod_pod, mongod_c)
        auth = "--auth" in mproc.args
        principal = None
        if user:
            try:
                principal = state.authenticate(user, password or "", "admin")
            except MongoError as e:
                self.rt.log(mongod_pod, str(mongod_c.get("name")), auth_failure_log(user, "admin", e, remote))
                raise StartupFailure(
                    "server returned error on SASL authentication step: Authentication failed.", on_fail
                ) from e
        need = "write" if check == "index" else "read"
        if on_fail == "panic":
            on_fail = "fatal"  # the session is up: the real code checks the query's error with log.Fatal
        if auth and not MongoState.allowed(principal, database, need):
            if check == "index":
                raise StartupFailure(
                    f'not authorized on {database} to execute command {{ createIndexes: "{collection}" }}', on_fail
                )
            raise StartupFailure(
                f'not authorized on {database} to execute command {{ count: "{collection}", query: {{ hotelId: "1" }}, '
                f'$db: "{database}" }}',
                on_fail,
            )
        if check == "index":
            state.collections.add((database, collection))

    def _start_mongod(self, world: World, pod: Obj, container: Obj, proc: Process) -> StartOutcome:
        lines = logstyle.mongod_boot()
        for flag in ("--tlsCertificateKeyFile", "--sslPEMKeyFile", "--tlsCAFile", "--sslCAFile"):
            path = proc.arg_value(flag)
            if path and not _file_mounted(world, pod, container, path):
                lines.append(logstyle.mongod_fatal(f"InvalidSSLConfiguration: Can not set up PEM key file: {path}"))
                return StartOutcome("crash", logs=lines, exit_code=1)
        state = world.mongo_state(pod, container)
        version = proc.config.get("MONGO_VERSION", "4.4")
        if state.initialised and _major(version) - _major(state.fcv) > 1:
            # a binary may only open data files whose featureCompatibilityVersion is its own or the previous major's
            lines.append(
                logstyle.mongod_fatal(
                    "UPGRADE PROBLEM: Found an invalid featureCompatibilityVersion document (ERROR: Location4926900: "
                    f"Invalid featureCompatibilityVersion document in admin.system.version: {{ _id: "
                    f'"featureCompatibilityVersion", version: "{state.fcv}" }}). If the current '
                    "featureCompatibilityVersion is below the previous major version, see the documentation on "
                    "upgrading"
                )
            )
            return StartOutcome("crash", logs=lines, exit_code=62)
        if not state.initialised:
            state.fcv = version
            lines += self._initdb(world, pod, container, state)
        tls = "requireTLS" if _tls_required(proc) else "off"
        lines.append(logstyle.mongod_listening(27017, tls))
        return StartOutcome("running", logs=lines)

    def _port_clash(self, pod: Obj, container: Obj, proc: Process) -> int | None:
        """A port this process listens on that a container started before it (the kubelet starts them in spec
        order) already holds: the containers of a pod share one network namespace, so the later bind fails."""
        mine = set(proc.ports())
        for other in (pod.get("spec") or {}).get("containers") or []:
            if other.get("name") == container.get("name"):
                return None
            try:
                held = set(process_of(self.rt.catalogue, other).ports())
            except ProcessError:
                continue
            if mine & held:
                return min(mine & held)
        return None

    def _initdb(self, world: World, pod: Obj, container: Obj, state: MongoState) -> list[str]:
        """The image's entrypoint on an empty data directory: root user from env, then /docker-entrypoint-initdb.d."""
        lines = []
        env = {e.get("name"): e.get("value") for e in container.get("env") or []}
        root, pwd = env.get("MONGO_INITDB_ROOT_USERNAME"), env.get("MONGO_INITDB_ROOT_PASSWORD")
        if root and pwd:
            state.create_user("admin", {"user": root, "pwd": pwd, "roles": [{"role": "root", "db": "admin"}]})
            lines.append(f'Successfully added user: {{ "user" : "{root}", "roles" : [ {{ "role" : "root" }} ] }}')
        for script_name, script in self._init_scripts(world, pod, container):
            lines.append(f"/usr/local/bin/docker-entrypoint.sh: running /docker-entrypoint-initdb.d/{script_name}")
            shell = Shell(state, False, "test", None)
            try:
                shell.run(script)
            except ShellError as e:
                lines.append(f"uncaught exception: {e}")
            lines += shell.out
        state.initialised = True
        return lines

    def _init_scripts(self, world: World, pod: Obj, container: Obj) -> list[tuple[str, str]]:
        ns = meta(pod).get("namespace")
        volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
        out: list[tuple[str, str]] = []
        for mount in container.get("volumeMounts") or []:
            if str(mount.get("mountPath", "")).rstrip("/") != "/docker-entrypoint-initdb.d":
                continue
            vol = volumes.get(mount.get("name")) or {}
            if "configMap" in vol:
                cm = world.view.get("ConfigMap", ns, vol["configMap"].get("name")) or {}
                out += [(k, v) for k, v in sorted((cm.get("data") or {}).items()) if k.endswith(".js")]
        return out

    def _retry_startup(self, world: World, pod: Obj, container: Obj, proc: Process) -> bool:
        """One turn of a C++ start-up retry loop; True once the process serves."""
        name = str(container.get("name"))
        key = (pod_key(pod), name, self.rt.instance(pod, name))
        if key in self.rt.serving:
            return True
        ns = str(meta(pod).get("namespace"))
        for step in proc.program.startup:
            if step.on_fail != "retry":
                continue
            try:
                self.mongo_session(
                    world,
                    pod,
                    ns,
                    expand(step.address, proc.config),
                    step.database or "test",
                    step.user,
                    step.password,
                    step.check,
                    step.collection or "x",
                    "retry",
                )
            except StartupFailure:
                now = self.rt.clock()
                if now - self.rt.last_retry_log.get(key[:2], 0.0) >= self.rt.retry_interval:
                    self.rt.last_retry_log[key[:2]] = now
                    self.rt.log(pod, name, logstyle.cpp(proc, "error", "Failed to create mongodb index, try again"))
                return False
        self.rt.serving.add(key)
        self.rt.log(pod, name, logstyle.cpp(proc, "info", f"Starting the {proc.program.tracer} server..."))
        return True

    # -- running -------------------------------------------------------------------------------------------------
    def ready(self, view: ClusterView, pod: Obj, container: Obj) -> bool:
        world = World(view, self.rt)
        name = str(container.get("name"))
        if world.paused(pod, name):
            return False
        probe = container.get("readinessProbe")
        if not probe:
            return True
        return self.probe(view, pod, container, probe) is None

    def probe(self, view: ClusterView, pod: Obj, container: Obj, probe: Obj) -> str | None:
        """A liveness/startup probe answered from state: exec runs the command in the container; httpGet needs an
        HTTP listener on the port serving the path (200-399); tcpSocket and grpc need a listener on the port."""
        world = World(view, self.rt)
        name = str(container.get("name"))
        ip = (pod.get("status") or {}).get("podIP") or "10.244.0.1"
        if "exec" in probe:
            argv = [str(a) for a in (probe["exec"] or {}).get("command") or []]
            res = self.exec(view, pod, container, argv) if argv else ExecResult(exit_code=0)
            if res.exit_code == 0:
                return None
            return (res.stdout + res.stderr).strip() or f"command {argv!r} exited with {res.exit_code}"
        kind = next((k for k in ("httpGet", "tcpSocket", "grpc") if k in probe), None)
        if kind is None:
            return None
        spec = probe[kind] or {}
        port = world._target_port(spec.get("port"), pod)
        try:
            proc = process_of(self.rt.catalogue, container, world.started_env(pod, container))
        except ProcessError:
            proc = None
        serving = (
            proc is not None
            and not world.paused(pod, name)
            and port in proc.ports()
            and (
                not any(s.on_fail == "retry" for s in proc.program.startup)
                or self._retry_startup(world, pod, container, proc)
            )
        )
        refused = f"dial tcp {ip}:{port}: connect: connection refused"
        if kind == "tcpSocket":
            return None if serving else refused
        if kind == "grpc":
            if not serving or proc is None:
                return f'timeout: failed to connect service "{ip}:{port}" within 1s'
            if proc.program.health_flag and flags.truthy(flags.evaluate(world, pod, proc, proc.program.health_flag)):
                return 'service unhealthy (responded with "NOT_SERVING")'
            return None
        path = str(spec.get("path") or "/")
        url = f"http://{ip}:{port}{path}"
        if not serving or proc is None:
            return f'Get "{url}": {refused}'
        protocols = {
            int(expand(lst.port, proc.config)): lst.protocol
            for lst in proc.program.listens
            if expand(lst.port, proc.config).isdigit()
        }
        if protocols.get(port) != "http":
            return f'Get "{url}": net/http: HTTP/1.x transport connection broken: malformed HTTP response'
        if proc.program.routes and proc.program.operation_for(path) is None:
            return "HTTP probe failed with statuscode: 404"
        started = self.rt.started.get((pod_key(pod), name))
        warming = started is not None and self.rt.clock() - started < proc.program.warmup_s * self.rt.probe_scale
        if proc.program.warmup_s and warming:
            return "HTTP probe failed with statuscode: 503"
        return None

    def alive(self, view: ClusterView, pod: Obj, container: Obj) -> StartOutcome | None:
        world = World(view, self.rt)
        name = str(container.get("name"))
        panic = self.rt.panics.pop((pod_key(pod), name, self.rt.instance(pod, name)), None)
        if panic is not None:
            proc = world.process(container)
            lines = [logstyle.go(proc, "PNC", 42, panic), f"panic: {panic}"] if proc else [f"panic: {panic}"]
            return StartOutcome("crash", logs=lines, exit_code=2)
        proc = world.process(container, pod)
        host = _lookup_target(proc.args) if proc and proc.program.waits_for_lookup else None
        if host is not None:  # the wait loop's next nslookup: it exits 0 once the name resolves
            resolved, lines = _lookup(view, pod, host)
            if resolved is not None:
                return StartOutcome("crash", logs=lines, exit_code=0)
            for line in lines:
                self.rt.log(pod, name, line)
        started = self.rt.started.get((pod_key(pod), name), 0.0)
        for key, spec in world.chaos_on(pod, name):
            if spec.action not in ("container-kill", "pod-failure"):
                continue
            once = (key, pod_key(pod), name)
            if once in self.rt.delivered or started > spec.start:
                continue
            self.rt.delivered.add(once)
            return StartOutcome("crash", logs=[], exit_code=137)
        return None

    def periodic_logs(self, view: ClusterView, pod: Obj, container: Obj) -> Iterable[str]:
        world = World(view, self.rt)
        proc = world.process(container, pod)
        if proc and (proc.program.consumer or proc.program.producer) and world.serving(pod, container):
            backends.tick(world, pod, container, proc)
        if proc and proc.program.queue is not None and world.serving(pod, container):
            queueing.tick(world, pod, container, proc)
        if proc and proc.program.serves_flags and world.serving(pod, container):
            flags.served_flags(world, pod, container, proc)  # flagd watches its file: a new projection is a reload
        if (
            proc
            and any(s.on_fail == "retry" for s in proc.program.startup)
            and not world.paused(pod, str(container.get("name")))
        ):
            self._retry_startup(world, pod, container, proc)
        return self.rt.drain(pod, str(container.get("name")))

    # -- exec ----------------------------------------------------------------------------------------------------
    def exec(self, view: ClusterView, pod: Obj, container: Obj, command: list[str]) -> ExecResult:
        world = World(view, self.rt)
        started = world.started_env(pod, container)
        try:
            proc = process_of(self.rt.catalogue, container, started)
        except ProcessError as e:
            return ExecResult(stderr=str(e) + "\n", exit_code=126)
        env = (
            started
            if started is not None
            else {str(e.get("name")): str(e.get("value", "")) for e in container.get("env") or [] if "value" in e}
        )
        tool = backends.exec_tool(world, pod, container, proc, command)
        if tool is not None:
            return tool
        argv = split_command(command, env) if proc.image.shell else command
        if not argv:
            return ExecResult()
        exe = argv[0].rsplit("/", 1)[-1]
        if exe in ("mongo", "mongosh") and exe in proc.image.tools:
            containers = (pod.get("spec") or {}).get("containers") or []
            mongod_c = next((c for c in containers if _is_mongod(world, c)), container)
            mproc = world.process(mongod_c)
            if mproc is None or world.serving(pod, mongod_c) is None:
                return ExecResult(
                    stderr="Error: couldn't connect to server 127.0.0.1:27017, connection attempt failed: "
                    "SocketException: Error connecting to 127.0.0.1:27017 :: caused by :: Connection refused :\n",
                    exit_code=1,
                )
            state = world.mongo_state(pod, mongod_c)
            out, err, code, server_logs = run_shell(state, "--auth" in mproc.args, argv)
            for line in server_logs:
                self.rt.log(pod, str(mongod_c.get("name")), line)
            return ExecResult(stdout=out, stderr=err, exit_code=code)
        if exe == "echo":
            return ExecResult(stdout=" ".join(argv[1:]) + "\n")
        if exe in ("true", "sleep"):
            return ExecResult()
        if exe == "env":
            pairs = [f"{k}={v}" for k, v in env.items()]
            return ExecResult(
                stdout="".join(x + "\n" for x in ["PATH=/usr/local/sbin:/usr/local/bin:/usr/bin", *pairs])
            )
        if exe == "hostname":
            return ExecResult(stdout=f"{meta(pod).get('name')}\n")
        if exe in ("sh", "bash") and not proc.image.shell:
            return ExecResult(stderr=f'exec: "{argv[0]}": executable file not found in $PATH\n', exit_code=127)
        if exe in ("ls", "cat", "ps", "netstat", "ss", "sh", "bash", "date"):
            return ExecResult(stdout=_small_tools(exe, argv, proc))
        return ExecResult(stderr=f"{shlex.join(argv[:1])}: command not found\n", exit_code=127)


def _small_tools(exe: str, argv: list[str], proc: Process) -> str:
    if exe in ("ps",):
        return f"PID   USER     TIME  COMMAND\n    1 root      0:01 {shlex.join([proc.binary, *proc.args])}\n"
    if exe in ("netstat", "ss"):
        row = "tcp        0      0 0.0.0.0:{}            0.0.0.0:*               LISTEN\n"
        return "".join(row.format(p) for p in proc.ports())
    if exe == "date":
        return datetime.now(UTC).strftime("%a %b %d %H:%M:%S UTC %Y") + "\n"
    return ""


_NSLOOKUP = re.compile(r"\buntil\s+nslookup\s+([A-Za-z0-9][A-Za-z0-9.-]*)")


def _lookup_target(args: list[str]) -> str | None:
    """The NAME of a ``sh -c 'until nslookup NAME; do ...; done'`` wait loop (None: no such loop)."""
    if len(args) < 2 or args[0] != "-c":
        return None
    m = _NSLOOKUP.search(args[1])
    return m.group(1) if m else None


def _lookup(view: ClusterView, pod: Obj, host: str) -> tuple[str | None, list[str]]:
    """busybox nslookup of ``host`` from ``pod``: (the name it resolved to or None, the lines it prints)."""
    ns = str(meta(pod).get("namespace") or "default")
    fqdn, _ = dns.resolve(view, pod, host, ns)
    server = dns.resolv_conf(pod, ns).nameservers[:1] or ["(none)"]
    head = [f"Server:    {server[0]}", f"Address 1: {server[0]} kube-dns.kube-system.svc.cluster.local", ""]
    if fqdn is None:
        return None, [*head, f"nslookup: can't resolve '{host}'", f"waiting for {host}"]
    svc = view.get("Service", fqdn.split(".")[1], fqdn.split(".")[0]) or {}
    ip = str((svc.get("spec") or {}).get("clusterIP") or "")
    return fqdn, [*head, f"Name:      {host}", f"Address 1: {ip} {fqdn}"]


def _mounted_config(world: World, pod: Obj, container: Obj, proc: Process) -> Process | str | None:
    """The process configured by a ConfigMap file mounted over the image's config file (None: no such mount; a
    string: the file does not parse). Env vars still override it, as they override the baked file."""
    path = proc.image.config_file
    if not path:
        return None
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        mpath = str(mount.get("mountPath") or "").rstrip("/")
        sub = mount.get("subPath")
        if sub and mpath == path:
            key = str(sub)
        elif not sub and mpath == path.rsplit("/", 1)[0]:
            key = path.rsplit("/", 1)[1]
        else:
            continue
        cm_ref = (volumes.get(mount.get("name")) or {}).get("configMap") or {}
        cm = world.view.get("ConfigMap", meta(pod).get("namespace"), str(cm_ref.get("name") or ""))
        raw = ((cm or {}).get("data") or {}).get(key)
        if raw is None:
            continue
        try:
            data = json.loads(raw)
        except ValueError as e:
            return f"Got error while unmarshalling config: {e}"
        config = {str(k): str(v) for k, v in dict(data).items()}
        for env in container.get("env") or []:
            if "value" in env:
                config[str(env["name"])] = str(env["value"])
        return dataclasses.replace(proc, config=config)
    return None


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def _mebibytes(q: object) -> float:
    try:
        return parse_quantity(q) / 2**20
    except ValueError:
        return float("inf")


def _is_mongod(world: World, container: Obj) -> bool:
    proc = world.process(container)
    return proc is not None and proc.program.server == "mongodb"


def _tls_required(proc: Process) -> bool:
    mode = proc.arg_value("--tlsMode", "--sslMode") or ""
    return mode in ("requireTLS", "requireSSL")


def _file_mounted(world: World, pod: Obj, container: Obj, path: str) -> bool:
    """Whether ``path`` exists inside the container: it must come from a mounted Secret or ConfigMap key."""
    ns = meta(pod).get("namespace")
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        mp = str(mount.get("mountPath", "")).rstrip("/")
        if not path.startswith(mp + "/"):
            continue
        key = path[len(mp) + 1 :]
        vol = volumes.get(mount.get("name")) or {}
        if "secret" in vol:
            obj = world.view.get("Secret", ns, vol["secret"].get("secretName"))
            data = {**((obj or {}).get("data") or {}), **((obj or {}).get("stringData") or {})}
        elif "configMap" in vol:
            obj = world.view.get("ConfigMap", ns, vol["configMap"].get("name"))
            data = (obj or {}).get("data") or {}
        else:
            return True
        return key in data
    return False


__all__ = ["AppBehaviour", "Landed", "Runtime"]


def _seconds(arg: str) -> float | None:
    """``sleep``'s duration argument (``5``, ``1.5``, ``2s``, ``1m``), or None when it is not one."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    text, factor = (arg[:-1], units[arg[-1]]) if arg and arg[-1] in units else (arg, 1.0)
    try:
        return float(text) * factor
    except ValueError:
        return None
