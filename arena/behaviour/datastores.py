"""Valkey, PostgreSQL and Kafka as their clients and operators see them (the Astronomy Shop's data stores).

Why it is shaped this way: each store keeps the state that decides whether a client gets in, and nothing is keyed to
a fault. Valkey's ``requirepass`` is run-time configuration (``CONFIG SET``), so it lives with the container instance
and a restart forgets it; a client without the password gets ``NOAUTH``. PostgreSQL keeps roles and passwords in its
data directory, created by the image's entrypoint from ``POSTGRES_*`` env and the ``/docker-entrypoint-initdb.d``
scripts when the directory is empty; TCP logins check the password (scram), the local socket trusts, as the official
image's ``pg_hba.conf`` does. Kafka keeps topics (one partition each, records in offset order) and each consumer
group's committed offset; an offset reset is refused while the group has live members, as the real tool refuses it.

The command-line tools (``valkey-cli``, ``psql``, ``kafka-*.sh``) parse the arguments their real counterparts take
and answer from this state; a command they do not know fails as the real tool would (usage or syntax error).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

MAX_RECORDS = 100_000
"""Records kept per topic (older ones are dropped, as retention would)."""


# ------------------------------------------------------------------------------------------------------ valkey
@dataclass
class ValkeyState:
    requirepass: str = ""
    data: dict[str, str] = field(default_factory=dict)

    def auth_error(self, password: str | None) -> str | None:
        """Why a client with ``password`` may not run commands (None: it may)."""
        if not self.requirepass:
            return None
        if password is None:
            return "NOAUTH Authentication required."
        if password != self.requirepass:
            return "WRONGPASS invalid username-password pair or user is disabled."
        return None


def parse_redis_address(address: str) -> tuple[str, str | None]:
    """``host:port,ssl=false,password=x`` (StackExchange.Redis) -> (host:port, password or None)."""
    head, *options = [p.strip() for p in address.split(",")]
    password = None
    for opt in options:
        key, _, value = opt.partition("=")
        if key.strip().lower() == "password":
            password = value
    return head, password


def valkey_cli(state: ValkeyState, argv: list[str]) -> tuple[str, str, int]:
    """``valkey-cli [-h host] [-p port] [-a password] COMMAND args...`` against ``state``."""
    args = list(argv[1:])
    password: str | None = None
    err = ""
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-h", "-p", "-n") and args:
            args.pop(0)
        elif flag in ("-a", "--pass") and args:
            password = args.pop(0)
            err += "Warning: Using a password with '-a' or '-u' option on the command line interface may not be safe.\n"
        elif flag in ("--no-auth-warning", "--raw"):
            continue
        else:
            return "", f"Unrecognized option or bad number of args for: '{flag}'\n", 1
    if not args:
        return "", "interactive mode needs a terminal\n", 1
    cmd = [a.upper() for a in args[:2]]
    if password is not None and state.requirepass and password != state.requirepass:
        return "", err + "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n", 0
    if cmd[0] == "AUTH":
        if not state.requirepass:
            return "", err + "ERR AUTH <password> called without any password configured for the default user.\n", 1
        ok = len(args) >= 2 and args[-1] == state.requirepass
        return ("OK\n", err, 0) if ok else ("", err + "WRONGPASS invalid username-password pair\n", 1)
    denied = state.auth_error(password)
    if denied:
        return "", err + f"{denied}\n", 1
    if cmd[0] == "PING":
        return "PONG\n", err, 0
    if cmd == ["CONFIG", "GET"] and len(args) == 3:
        if args[2].lower() == "requirepass":
            return f"requirepass\n{state.requirepass}\n", err, 0
        return "", err, 0
    if cmd == ["CONFIG", "SET"] and len(args) == 4:
        if args[2].lower() != "requirepass":
            return "OK\n", err, 0
        state.requirepass = args[3]
        return "OK\n", err, 0
    if cmd[0] == "SET" and len(args) >= 3:
        state.data[args[1]] = args[2]
        return "OK\n", err, 0
    if cmd[0] == "GET" and len(args) == 2:
        return f"{state.data.get(args[1], '')}\n", err, 0
    if cmd[0] == "DBSIZE":
        return f"{len(state.data)}\n", err, 0
    return "", err + f"ERR unknown command '{args[0]}', with args beginning with: {' '.join(args[1:2])}\n", 1


# ------------------------------------------------------------------------------------------------------ postgres
@dataclass(frozen=True)
class DbTarget:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_postgres(conn: str) -> DbTarget | None:
    """A libpq URL (``postgres://user:pass@host:port/db?...``) or an Npgsql string (``Host=..;Username=..``)."""
    conn = conn.strip()
    if conn.startswith(("postgres://", "postgresql://")):
        u = urlsplit(conn)
        if not u.hostname:
            return None
        return DbTarget(
            u.hostname,
            u.port or 5432,
            unquote(u.username or "postgres"),
            unquote(u.password or ""),
            (u.path or "/").lstrip("/") or unquote(u.username or "postgres"),
        )
    if "=" not in conn:
        return None
    kv = {}
    for part in conn.split(";"):
        k, _, v = part.partition("=")
        if k.strip():
            kv[k.strip().lower()] = v.strip()
    host = kv.get("host") or kv.get("server")
    if not host:
        return None
    try:
        port = int(kv.get("port", "5432"))
    except ValueError:
        return None
    user = kv.get("username") or kv.get("user id") or kv.get("user") or "postgres"
    return DbTarget(host, port, user, kv.get("password", ""), kv.get("database", user))


@dataclass
class PostgresState:
    initialised: bool = False
    roles: dict[str, str | None] = field(default_factory=dict)
    """Role -> password (None: no password, cannot log in over TCP)."""
    databases: dict[str, str] = field(default_factory=dict)
    """Database -> owner."""
    sessions: dict[str, int] = field(default_factory=dict)
    """Open client sessions per role (pooled connections of the services)."""

    def login(self, user: str, password: str, database: str) -> str | None:
        """A TCP login (scram-sha-256 in pg_hba): None when it succeeds, else the server's FATAL message."""
        if user not in self.roles or self.roles[user] is None or self.roles[user] != password:
            return f'FATAL:  password authentication failed for user "{user}"'
        if database not in self.databases:
            return f'FATAL:  database "{database}" does not exist'
        self.sessions[user] = min(self.sessions.get(user, 0) + 1, 10)
        return None

    def run_sql(self, sql: str) -> tuple[str, str]:
        """Statements separated by ``;``: (stdout, error). Only what operators run on roles and sessions."""
        out: list[str] = []
        for stmt in _statements(sql):
            low = stmt.lower()
            m = re.match(r"(create|alter)\s+(user|role)\s+\"?(\w+)\"?(.*)$", stmt, re.I | re.S)
            if m:
                verb, name, rest = m.group(1).lower(), m.group(3), m.group(4)
                pw = re.search(r"password\s+'((?:[^']|'')*)'", rest, re.I)
                if verb == "create":
                    if name in self.roles:
                        return "\n".join(out), f'ERROR:  role "{name}" already exists'
                    self.roles[name] = pw.group(1).replace("''", "'") if pw else None
                    out.append("CREATE ROLE")
                else:
                    if name not in self.roles:
                        return "\n".join(out), f'ERROR:  role "{name}" does not exist'
                    if pw:
                        self.roles[name] = pw.group(1).replace("''", "'")
                    out.append("ALTER ROLE")
                continue
            m = re.match(r"create\s+database\s+\"?(\w+)\"?(?:\s+(?:with\s+)?owner\s*=?\s*\"?(\w+)\"?)?", stmt, re.I)
            if m:
                if m.group(1) in self.databases:
                    return "\n".join(out), f'ERROR:  database "{m.group(1)}" already exists'
                self.databases[m.group(1)] = m.group(2) or "postgres"
                out.append("CREATE DATABASE")
                continue
            if low.startswith(
                ("grant ", "revoke ", "\\connect", "\\c ", "create table", "insert ", "create extension")
            ):
                out.append(low.split()[0].lstrip("\\").upper())
                continue
            m = re.search(r"pg_terminate_backend.*usename\s*=\s*'(\w+)'", stmt, re.I | re.S)
            if m:
                n = self.sessions.pop(m.group(1), 0)
                out.append(" pg_terminate_backend \n----------------------\n" + " t\n" * n + f"({n} rows)")
                continue
            if re.fullmatch(r"select\s+1", low):
                out.append(" ?column? \n----------\n        1\n(1 row)")
                continue
            if re.fullmatch(r"select\s+rolname\s+from\s+pg_roles", low):
                rows = sorted(self.roles)
                out.append(" rolname \n---------\n" + "".join(f" {r}\n" for r in rows) + f"({len(rows)} rows)")
                continue
            return "\n".join(out), f'ERROR:  syntax error at or near "{stmt.split()[0] if stmt.split() else ""}"'
        return "\n".join(out), ""


def _statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in re.split(r";(?=(?:[^']*'[^']*')*[^']*$)", "\n".join(lines)) if s.strip()]


def psql(state: PostgresState, argv: list[str]) -> tuple[str, str, int]:
    """``psql [-U user] [-d db] [-h host] [-c SQL] [conninfo URL]``: a URL or -h logs in over TCP (password
    checked); otherwise the local socket (trust)."""
    args = list(argv[1:])
    user, database, sql, url, tcp = "postgres", None, None, None, False
    while args:
        a = args.pop(0)
        if a in ("-U", "--username") and args:
            user = args.pop(0)
        elif a in ("-d", "--dbname") and args:
            value = args.pop(0)
            url, database = (value, database) if "://" in value or "=" in value else (url, value)
        elif a in ("-h", "--host") and args:
            args.pop(0)
            tcp = True
        elif a in ("-c", "--command") and args:
            sql = args.pop(0)
        elif a in ("-p", "--port") and args:
            args.pop(0)
        elif a in ("-t", "-A", "-q", "-X", "--tuples-only", "--no-align", "--quiet", "-w", "-v"):
            if a == "-v" and args:
                args.pop(0)
        elif not a.startswith("-") and ("://" in a or "=" in a):
            url = a
        elif not a.startswith("-"):
            database = a
        else:
            return "", f"psql: error: unrecognized option '{a}'\n", 1
    password = ""
    if url:
        target = parse_postgres(url)
        if target is None:
            return "", f'psql: error: invalid connection string "{url}"\n', 1
        user, password, database, tcp = target.user, target.password, target.database, True
    database = database or user
    if tcp:
        denied = state.login(user, password, database)
        if denied:
            return "", f'psql: error: connection to server at "localhost", port 5432 failed: {denied}\n', 2
    elif user not in state.roles:
        return "", f'psql: error: FATAL:  role "{user}" does not exist\n', 2
    if sql is None:
        return "", "psql: error: no command given (interactive use needs a terminal)\n", 1
    out, err = state.run_sql(sql)
    return (out + "\n" if out else ""), (err + "\n" if err else ""), (1 if err else 0)


# ------------------------------------------------------------------------------------------------------ kafka
@dataclass
class KafkaState:
    topics: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[tuple[str, str], int] = field(default_factory=dict)
    """(group, topic) -> committed offset of partition 0."""

    def produce(self, topic: str, value: str, auto_create: bool = True) -> int | None:
        """Append a record; its offset (None: the topic does not exist and auto-creation is off)."""
        if topic not in self.topics:
            if not auto_create:
                return None
            self.topics[topic] = []
        records = self.topics[topic]
        records.append(value)
        if len(records) > MAX_RECORDS:
            del records[0]
        return len(records) - 1


def valid_record(value: str) -> bool:
    """A record a JSON-validating consumer accepts: a JSON object."""
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False


def _opt(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def kafka_tool(state: KafkaState, argv: list[str], active: dict[str, int], stdin: str = "") -> tuple[str, str, int]:
    """``kafka-topics.sh``, ``kafka-consumer-groups.sh``, ``kafka-console-producer.sh`` and
    ``kafka-console-consumer.sh``; ``active`` is the number of live members per consumer group."""
    tool = argv[0].rsplit("/", 1)[-1].removesuffix(".sh")
    args = argv[1:]
    if _opt(args, "--bootstrap-server") is None:
        return "", 'Missing required argument "[bootstrap-server]"\n', 1
    topic = _opt(args, "--topic")
    if tool == "kafka-topics":
        if "--list" in args:
            return "".join(f"{t}\n" for t in sorted(state.topics)), "", 0
        if not topic:
            return "", 'Missing required argument "[topic]"\n', 1
        if "--create" in args:
            if topic in state.topics:
                return "", f"Error while executing topic command : Topic '{topic}' already exists.\n", 1
            state.topics[topic] = []
            return f"Created topic {topic}.\n", "", 0
        if "--delete" in args:
            if topic not in state.topics:
                return "", f"Error while executing topic command : Topic '{topic}' does not exist as expected\n", 1
            del state.topics[topic]
            for key in [k for k in state.groups if k[1] == topic]:
                del state.groups[key]
            return "", "", 0
        if "--describe" in args:
            if topic not in state.topics:
                return "", f"Error while executing topic command : Topic '{topic}' does not exist as expected\n", 1
            return f"Topic: {topic}\tPartitionCount: 1\tReplicationFactor: 1\n", "", 0
    if tool == "kafka-console-producer":
        if not topic:
            return "", 'Missing required argument "[topic]"\n', 1
        for line in stdin.splitlines():
            if line:
                state.produce(topic, line)
        return "", "", 0
    if tool == "kafka-console-consumer":
        if not topic or topic not in state.topics:
            return "", f"Error: topic {topic} not found\n", 1
        records = state.topics[topic]
        try:
            limit = int(_opt(args, "--max-messages") or len(records))
        except ValueError:
            return "", "--max-messages takes a number\n", 1
        shown = records[:limit] if "--from-beginning" in args else []
        return "".join(r + "\n" for r in shown), f"Processed a total of {len(shown)} messages\n", 0
    if tool == "kafka-consumer-groups":
        group = _opt(args, "--group")
        if "--list" in args:
            return "".join(f"{g}\n" for g in sorted({g for g, _ in state.groups})), "", 0
        if not group:
            return "", "Option [group] is required\n", 1
        if "--describe" in args:
            rows = [(t, off) for (g, t), off in sorted(state.groups.items()) if g == group]
            if not rows:
                return "", f"Consumer group '{group}' does not exist.\n", 0
            head = "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\n"
            body = "".join(
                f"{group} {t} 0 {off} {len(state.topics.get(t, []))} {len(state.topics.get(t, [])) - off}\n"
                for t, off in rows
            )
            return head + body, "", 0
        if active.get(group, 0) and ("--reset-offsets" in args or "--delete" in args):
            what = "Assignments can only be reset" if "--reset-offsets" in args else "Deletion"
            return (
                "",
                f"Error: {what} if the group '{group}' is inactive, but the current state is Stable.\n",
                1,
            )
        if "--delete" in args:
            gone = [k for k in state.groups if k[0] == group]
            for k in gone:
                del state.groups[k]
            return f"Deletion of requested consumer groups ('{group}') was successful.\n", "", 0
        if "--reset-offsets" in args:
            if not topic:
                return "", "Option [reset-offsets] needs --topic or --all-topics\n", 1
            name = topic.split(":", 1)[0]
            if name not in state.topics:
                return "", f"Error: topic {name} does not exist\n", 1
            end = len(state.topics[name])
            to = _opt(args, "--to-offset")
            if to is not None:
                try:
                    offset = int(to)
                except ValueError:
                    return "", "--to-offset takes a number\n", 1
            elif "--to-earliest" in args:
                offset = 0
            elif "--to-latest" in args:
                offset = end
            elif _opt(args, "--shift-by") is not None:
                try:
                    offset = state.groups.get((group, name), 0) + int(_opt(args, "--shift-by") or "0")
                except ValueError:
                    return "", "--shift-by takes a number\n", 1
            else:
                return "", "One of the reset scopes must be given (--to-offset, --to-earliest, ...)\n", 1
            offset = max(0, min(offset, end))
            if "--execute" in args:
                state.groups[(group, name)] = offset
            row = f"{group} {name} 0 {offset}\n"
            return "GROUP TOPIC PARTITION NEW-OFFSET\n" + row, "", 0
    return "", f"{tool}: unsupported arguments {shlex.join(args)}\n", 1


def piped_stdin(command: str) -> tuple[str, list[str]] | None:
    """``echo 'x' | tool args`` or ``printf 'a\\nb\\n' | tool args`` (a ``sh -c`` line): (stdin text, tool argv)."""
    left, sep, right = command.partition("|")
    if not sep or "|" in right:
        return None
    try:
        producer, consumer = shlex.split(left), shlex.split(right)
    except ValueError:
        return None
    if not producer or not consumer or producer[0] not in ("echo", "printf"):
        return None
    if producer[0] == "echo":
        return " ".join(producer[1:]) + "\n", consumer
    text = " ".join(producer[1:]).replace("\\n", "\n")
    return text, consumer
