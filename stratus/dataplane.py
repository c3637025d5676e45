"""Data-plane operations: the only commands Stratus runs inside containers, each with an inverse the project defines.

Why it is shaped this way: ``exec`` reaches past the Kubernetes API into a program's own state, where no pre-image,
dry run or digest sees what changed. An agent that may send any argv with any "inverse" it declares (``["true"]``) can
therefore do anything and record that nothing needs undoing. So the argv is never the agent's:

- the agent (or the rulebook) names an *operation* of ``CATALOGUE`` and gives typed arguments (a database, a user,
  roles), each checked against the server's own naming rules, so no argument can become syntax;
- the gateway renders the argv itself, at run time, from the operation and the target container's spec; the undo
  record is the operation's inverse from the catalogue, with the same arguments, and the undoer runs only that;
- credentials are never arguments: the admin user and password are the container's own environment variables
  (``MONGO_INITDB_ROOT_USERNAME``/``_PASSWORD``, set from a value or a Secret reference), expanded by the container's
  shell (``"$VAR"``), so they appear on no command line Stratus sends, in no journal record and in no event; a user
  recreated as the database's init scripts declare it is read from those scripts (ConfigMaps) at run time;
- an operation whose inverse cannot be computed (dropping a user: its password is gone) is never run forward;
- an operation whose inverse depends on state the command overwrites (a consumer group's committed offset) names a
  read-only command (``reads``) whose output is that state: the gateway runs it when it records the undo, before the
  write, and the inverse's arguments are computed from it (``invert``); a read that fails or shows no such state
  (a group with no committed offset there) leaves no inverse, so the operation is refused;
- an operation the server refuses while clients are connected (Kafka resets no offset of a group with live members)
  names the Deployments it stops (``stops``, typed arguments): the gateway scales them to 0, waits for their pods to
  be gone, runs the command and scales them back to their replicas before the operation returns, so no workload
  ends the action with less Ready capacity (``stratus.disruption``'s intent). The replicas to restore are recorded in
  the undo's arguments, so an undo after a crash in between brings them back too.
- privilege stays what the application declared: roles are granted (and revoked, since a revoke's inverse is a grant)
  only as the database's init scripts declare them for that user, so no operation can grant ``root``, ``__system``
  or ``userAdminAnyDatabase`` the application never declared.

Output is not returned to the agent beyond the exit status: a database shell echoes what it did, users included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from stratus.identity import DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX

Obj = dict[str, Any]
INIT_DIR = "/docker-entrypoint-initdb.d"
ROOT_USER_ENV = "MONGO_INITDB_ROOT_USERNAME"
ROOT_PASSWORD_ENV = "MONGO_INITDB_ROOT_PASSWORD"
_DB = re.compile(r"[A-Za-z0-9_-]{1,63}", re.ASCII)
_USER = re.compile(r"[A-Za-z0-9_.@-]{1,64}", re.ASCII)
_ROLE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}", re.ASCII)
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}", re.ASCII)
KAFKA_PARTITION_MAX = 99_999
"""The highest partition index accepted (a topic's partitions number far fewer in practice)."""
KAFKA_OFFSET_MAX = 2**63 - 1
KAFKA_PORT = 9092
"""The broker port the tools connect to inside the broker's container when it declares no ``plaintext`` port."""
CONSUMERS_MAX = 8
REPLICAS_MAX = 1000


class DataPlaneError(ValueError):
    """An operation the catalogue does not have, or arguments it does not accept; ``str()`` says which and why."""


def _match(pattern: re.Pattern[str], value: str, what: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not valid: {rule}")
    return value


class MongoRole(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str = Field(description="A built-in or user-defined MongoDB role, e.g. readWrite.")
    db: str = Field(description="The database the role applies to.")

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        return _match(_ROLE, v, "role", "letters, digits and '_', starting with a letter")

    @field_validator("db")
    @classmethod
    def _db(cls, v: str) -> str:
        return _match(_DB, v, "database", "letters, digits, '_' and '-', at most 63")


class MongoUser(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    db: str = Field(description="The user's authentication database.")
    user: str = Field(description="The user name.")

    @field_validator("db")
    @classmethod
    def _db(cls, v: str) -> str:
        return _match(_DB, v, "database", "letters, digits, '_' and '-', at most 63")

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        return _match(_USER, v, "user", "letters, digits and '_', '.', '@', '-', at most 64")


class MongoUserRoles(MongoUser):
    roles: list[MongoRole] = Field(min_length=1, max_length=16, description="The roles granted or revoked.")


def _kafka_name(value: str, what: str) -> str:
    """A topic or group name as Kafka accepts it: ASCII letters, digits, '.', '_' and '-', at most 249, not '.'/'..'."""
    _match(_KAFKA_NAME, value, what, "ASCII letters, digits, '.', '_' and '-', 1 to 249 characters")
    if value in (".", ".."):
        raise ValueError(f"{what} {value!r} is not valid: '.' and '..' are not Kafka names")
    return value


class KafkaGroupOffset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str = Field(description="The consumer group.")
    topic: str = Field(description="The topic.")
    partition: int = Field(strict=True, ge=0, le=KAFKA_PARTITION_MAX, description="The partition of the topic.")
    offset: int = Field(
        strict=True, ge=0, le=KAFKA_OFFSET_MAX, description="The offset the group's next read starts at."
    )
    consumers: list[str] = Field(
        min_length=1,
        max_length=CONSUMERS_MAX,
        description="The Deployments (in the broker pod's namespace) whose pods are the group's members: scaled to 0 "
        "while the offset is reset (Kafka resets only a group with no live member), then back to their replicas.",
    )
    replicas: dict[str, int] | None = Field(
        default=None,
        description="Set by the undo record only: the replicas each consumer is restored to (its replicas before the "
        "operation it undoes). None: each consumer's replicas when the operation starts.",
    )

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        return _kafka_name(v, "consumer group")

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        return _kafka_name(v, "topic")

    @field_validator("consumers")
    @classmethod
    def _consumers(cls, v: list[str]) -> list[str]:
        for name in v:
            if not isinstance(name, str) or len(name) > DNS1123_SUBDOMAIN_MAX or not DNS1123_SUBDOMAIN.fullmatch(name):
                raise ValueError(f"consumer Deployment {name!r} is not valid: a DNS-1123 subdomain, at most 253")
        if len(set(v)) != len(v):
            raise ValueError("consumer Deployments are named twice")
        return v

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, v: dict[str, int] | None, info: ValidationInfo) -> dict[str, int] | None:
        if v is None:
            return v
        consumers = set(info.data.get("consumers") or [])
        for name, n in v.items():
            if name not in consumers:
                raise ValueError(f"replicas names {name!r}, which is not one of the consumers")
            if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= REPLICAS_MAX:
                raise ValueError(f"replicas of {name!r} must be an int from 0 to {REPLICAS_MAX}")
        return v


ConfigMapReader = Callable[[str, str], Obj | None]


@dataclass(frozen=True)
class Operation:
    """One catalogue entry: its arguments, its inverse, and how its argv is made."""

    name: str
    summary: str
    args: type[BaseModel]
    inverse: str | None
    """The operation that undoes this one (same arguments unless ``invert`` computes them); None: never run forward."""
    argv: Callable[[Any, ConfigMapReader, Obj, Obj], list[str]]
    """The argv from the typed arguments, a ConfigMap reader, the pod and the container."""
    reads: Callable[[Any, Obj], list[str]] | None = None
    """A read-only argv (typed arguments, container) whose output the inverse's arguments are computed from."""
    invert: Callable[[Any, str], Obj] | None = None
    """The inverse's arguments from the typed arguments and the output of ``reads``; ``DataPlaneError`` when that
    output shows no state to restore."""
    stops: Callable[[Any], list[str]] | None = None
    """The Deployments (in the pod's namespace) that have no pod while the command runs."""


def _js(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _sibling(db: str) -> str:
    return f"db.getSiblingDB({_js(db)})"


def _roles(args: MongoUserRoles) -> list[Obj]:
    return [r.model_dump() for r in args.roles]


def _env_names(container: Obj) -> set[str]:
    return {str(e.get("name")) for e in container.get("env") or [] if isinstance(e, dict)}


def _mongo(script: Callable[[Any, ConfigMapReader, Obj], str]) -> Callable[[Any, ConfigMapReader, Obj, Obj], list[str]]:
    """The argv of a mongo shell script: the container's shell runs the client with the credentials of the
    container's own environment (``"$VAR"``) and the script as a positional argument."""

    def argv(args: Any, read: ConfigMapReader, pod: Obj, container: Obj) -> list[str]:
        auth = ""
        if {ROOT_USER_ENV, ROOT_PASSWORD_ENV} <= _env_names(container):
            auth = f' -u "${ROOT_USER_ENV}" -p "${ROOT_PASSWORD_ENV}" --authenticationDatabase admin'
        return ["sh", "-c", f'exec mongo admin --quiet{auth} --eval "$1"', "stratus-dataplane", script(args, read, pod)]

    return argv


def _declared_roles(args: MongoUserRoles, read: Callable[[str, str], Obj | None], pod: Obj, verb: str) -> None:
    """Refuse unless every role of ``args`` is one the database's init scripts declare for the user: a grant gives
    back only privileges the application declared (never root, __system, userAdminAnyDatabase it never had), and a
    revoke takes only such a role, so that its inverse (a grant) stays within them too."""
    declared = declared_user(pod, read, args.db, args.user)
    if declared is None:
        raise DataPlaneError(
            f"the init scripts of pod {pod.get('metadata', {}).get('name')} ({INIT_DIR}) declare no user "
            f"{args.user!r} in database {args.db!r}; roles are {verb} only as the database's own scripts declare them"
        )
    undeclared = [r for r in _roles(args) if r not in declared["roles"]]
    if undeclared:
        names = ", ".join(f"{r['role']}@{r['db']}" for r in undeclared)
        held = ", ".join(f"{r['role']}@{r['db']}" for r in declared["roles"]) or "none"
        raise DataPlaneError(
            f"the init scripts declare no role {names} for {args.user!r} in database {args.db!r} (they declare: "
            f"{held}); roles are {verb} only as the application declares them, so no operation (or its undo) "
            "grants a privilege the application never had"
        )


def _grant(args: MongoUserRoles, read: Callable[[str, str], Obj | None], pod: Obj) -> str:
    _declared_roles(args, read, pod, "granted")
    return f"{_sibling(args.db)}.grantRolesToUser({_js(args.user)},{_js(_roles(args))})"


def _revoke(args: MongoUserRoles, read: Callable[[str, str], Obj | None], pod: Obj) -> str:
    _declared_roles(args, read, pod, "revoked")
    return f"{_sibling(args.db)}.revokeRolesFromUser({_js(args.user)},{_js(_roles(args))})"


def _drop(args: MongoUser, _read: Any, _pod: Obj) -> str:
    return f"{_sibling(args.db)}.dropUser({_js(args.user)})"


def _create_declared(args: MongoUser, read: Callable[[str, str], Obj | None], pod: Obj) -> str:
    declared = declared_user(pod, read, args.db, args.user)
    if declared is None:
        raise DataPlaneError(
            f"the init scripts of pod {pod.get('metadata', {}).get('name')} ({INIT_DIR}) declare no user "
            f"{args.user!r} in database {args.db!r}; only a declared user can be recreated"
        )
    doc = {"user": args.user, "pwd": declared["pwd"], "roles": declared["roles"]}
    return f"{_sibling(args.db)}.createUser({_js(doc)})"


def _bootstrap(container: Obj) -> str:
    """The broker's own listener, as the tools in its container reach it: the ``plaintext`` port, else 9092."""
    for port in container.get("ports") or []:
        if isinstance(port, dict) and port.get("name") == "plaintext" and isinstance(port.get("containerPort"), int):
            return f"localhost:{port['containerPort']}"
    return f"localhost:{KAFKA_PORT}"


def _kafka_reset(args: KafkaGroupOffset, _read: Any, _pod: Obj, container: Obj) -> list[str]:
    return [
        "kafka-consumer-groups.sh",
        "--bootstrap-server",
        _bootstrap(container),
        "--group",
        args.group,
        "--topic",
        f"{args.topic}:{args.partition}",
        "--reset-offsets",
        "--to-offset",
        str(args.offset),
        "--execute",
    ]


def _kafka_describe(args: KafkaGroupOffset, container: Obj) -> list[str]:
    return [
        "kafka-consumer-groups.sh",
        "--bootstrap-server",
        _bootstrap(container),
        "--describe",
        "--group",
        args.group,
    ]


def committed_offset(output: str, group: str, topic: str, partition: int) -> int | None:
    """The group's committed offset on ``topic``:``partition`` in ``kafka-consumer-groups.sh --describe`` output
    (columns found by their header; extra columns and alignment do not matter), or None when it shows none ('-')."""
    columns: list[str] | None = None
    for line in output.splitlines()[:10_000]:
        cells = line.split()
        if "CURRENT-OFFSET" in cells and "TOPIC" in cells and "PARTITION" in cells:
            columns = cells
            continue
        if columns is None or len(cells) != len(columns):
            continue
        row = dict(zip(columns, cells, strict=True))
        if row.get("GROUP", group) != group or row["TOPIC"] != topic or row["PARTITION"] != str(partition):
            continue
        value = row["CURRENT-OFFSET"]
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            return None
        offset = int(value)
        return offset if offset <= KAFKA_OFFSET_MAX else None
    return None


def _kafka_invert(args: KafkaGroupOffset, output: str) -> Obj:
    offset = committed_offset(output, args.group, args.topic, args.partition)
    if offset is None:
        raise DataPlaneError(
            f"consumer group {args.group!r} has no committed offset on {args.topic}:{args.partition}, so there is "
            "no offset to restore; reset only a partition the group has committed on"
        )
    return {**args.model_dump(mode="json"), "offset": offset}


def _kafka_consumers(args: KafkaGroupOffset) -> list[str]:
    return list(args.consumers)


CATALOGUE: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "mongodb.grant_roles",
            "Grant an existing MongoDB user roles its init scripts declare for it.",
            MongoUserRoles,
            "mongodb.revoke_roles",
            _mongo(_grant),
        ),
        Operation(
            "mongodb.revoke_roles",
            "Revoke from a MongoDB user roles its init scripts declare for it.",
            MongoUserRoles,
            "mongodb.grant_roles",
            _mongo(_revoke),
        ),
        Operation(
            "mongodb.create_declared_user",
            "Recreate a MongoDB user exactly as the database's init scripts declare it (password and roles are read "
            "from the scripts at run time).",
            MongoUser,
            "mongodb.drop_user",
            _mongo(_create_declared),
        ),
        Operation(
            "mongodb.drop_user",
            "Drop a MongoDB user (only as the undo of mongodb.create_declared_user: a dropped password is gone).",
            MongoUser,
            None,
            _mongo(_drop),
        ),
        Operation(
            "kafka.reset_group_offset",
            "Reset a consumer group's committed offset on one topic partition (e.g. past a record its consumer cannot "
            "process): the consumer Deployments are stopped while it runs and restored after; the undo resets the "
            "offset the group had before.",
            KafkaGroupOffset,
            "kafka.reset_group_offset",
            _kafka_reset,
            reads=_kafka_describe,
            invert=_kafka_invert,
            stops=_kafka_consumers,
        ),
    )
}
"""Every data-plane operation Stratus runs, by name."""


def _agent_fields(op: Operation) -> list[str]:
    """The arguments an agent gives (not those only an undo record carries)."""
    return [f for f in op.args.model_fields if not (op.stops is not None and f == "replicas")]


def describe_catalogue() -> str:
    return "; ".join(
        f"{op.name}({', '.join(_agent_fields(op))}): {op.summary}" for op in CATALOGUE.values() if op.inverse
    )


def operation(name: str) -> Operation:
    op = CATALOGUE.get(name)
    if op is None:
        raise DataPlaneError(
            f"exec runs only operations of the data-plane catalogue, and {name!r} is not one. "
            f"Operations: {describe_catalogue()}."
        )
    return op


def check_args(name: str, args: Obj) -> Obj:
    """The operation's arguments, validated and normalised; ``DataPlaneError`` otherwise."""
    op = operation(name)
    try:
        return op.args.model_validate(args).model_dump(mode="json")
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise DataPlaneError(f"arguments of {name} refused: {reasons}") from exc


def inverse_of(name: str, args: Obj, observed: str | None = None) -> tuple[str, Obj] | None:
    """The catalogue inverse (operation, arguments), or None when the operation may not run forward. An operation
    that ``reads`` state needs that read's output (``observed``); ``DataPlaneError`` when it shows no state to
    restore, or when it is missing."""
    op = operation(name)
    if op.inverse is None:
        return None
    if op.invert is None:
        return op.inverse, check_args(op.inverse, args)
    if observed is None:
        raise DataPlaneError(f"the inverse of {name} is computed from a read of the current state, and none was made")
    return op.inverse, check_args(op.inverse, op.invert(op.args.model_validate(args), observed))


def has_inverse(name: str) -> bool:
    """Whether ``name`` may run forward at all (its inverse may still need a read of the state, ``inverse_of``)."""
    return operation(name).inverse is not None


def check_forward(name: str, args: Obj) -> None:
    """Refuse arguments only an undo record may carry (the replicas a stopped consumer is restored to)."""
    if operation(name).stops is not None and args.get("replicas") is not None:
        raise DataPlaneError(
            f"{name} refused: 'replicas' is set only by an undo record (the replicas the operation it undoes found); "
            "leave it out, and the consumers are restored to their replicas of the moment"
        )


def read_argv(name: str, args: Obj, container: Obj) -> list[str] | None:
    """The read-only argv whose output the inverse of ``name`` needs (None: its inverse needs no read)."""
    op = operation(name)
    return None if op.reads is None else op.reads(op.args.model_validate(args), container)


def stopped_deployments(name: str, args: Obj) -> list[str]:
    """The Deployments ``name`` stops while its command runs (none for most operations)."""
    op = operation(name)
    return [] if op.stops is None else op.stops(op.args.model_validate(args))


def render(name: str, args: Obj, pod: Obj, container: Obj, read_configmap: ConfigMapReader) -> list[str]:
    """The argv for ``name`` in ``container``, rendered by the project from the typed arguments."""
    op = operation(name)
    return op.argv(op.args.model_validate(args), read_configmap, pod, container)


# --- init scripts ----------------------------------------------------------------------------------------------

_CREATE = re.compile(r"createUser\(\s*(\{.*?\})\s*\)", re.S)
_GRANT = re.compile(r"grantRolesToUser\(\s*['\"]([\w.@-]+)['\"]\s*,\s*(\[.*?\])\s*\)", re.S)
_SIBLING_ASSIGN = re.compile(
    r"^\s*(?:var\s+|let\s+|const\s+)?(\w+)\s*=\s*db\.getSiblingDB\(\s*['\"]([\w.-]+)['\"]\s*\)"
)
_SIBLING = re.compile(r"getSiblingDB\(\s*['\"]([\w.-]+)['\"]\s*\)")
_USE = re.compile(r"^\s*use\s+([\w.-]+)")
_FIELD = r"{}\s*['\"]?\s*:\s*['\"]([^'\"]*)['\"]"
_ROLE_DOC = re.compile(r"role\s*['\"]?\s*:\s*['\"]([\w.-]+)['\"]\s*,\s*['\"]?db['\"]?\s*:\s*['\"]([\w.-]+)['\"]")


def _statements(script: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    depth = 0
    for ch in re.sub(r"//[^\n]*", "", script):
        depth += (ch in "([{") - (ch in ")]}")
        if ch == ";" or (ch == "\n" and depth <= 0):
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf))
    return [s for s in out if s.strip()]


def declared_user(pod: Obj, read_configmap: Callable[[str, str], Obj | None], db: str, user: str) -> Obj | None:
    """``{pwd, roles}`` of ``user`` in ``db`` as the pod's init scripts (ConfigMaps at ``INIT_DIR``) declare it."""
    spec = pod.get("spec") or {}
    namespace = str((pod.get("metadata") or {}).get("namespace") or "")
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    found: Obj | None = None
    for c in spec.get("containers") or []:
        for mount in c.get("volumeMounts") or []:
            if str(mount.get("mountPath", "")).rstrip("/") != INIT_DIR:
                continue
            cm_name = ((volumes.get(mount.get("name")) or {}).get("configMap") or {}).get("name")
            cm = read_configmap(namespace, str(cm_name)) if cm_name else None
            for key, text in sorted(((cm or {}).get("data") or {}).items()):
                if key.endswith(".js"):
                    found = _find_user(str(text), db, user) or found
    return found


def _find_user(script: str, db: str, user: str) -> Obj | None:
    current, aliases, found = "test", {"db": "test"}, None
    for stmt in _statements(script):
        assign = _SIBLING_ASSIGN.match(stmt)
        if assign and "createUser" not in stmt:
            aliases[assign.group(1)] = assign.group(2)
            if assign.group(1) == "db":
                current = assign.group(2)
            continue
        use = _USE.match(stmt)
        if use:
            current = aliases["db"] = use.group(1)
            continue
        create, grant = _CREATE.search(stmt), _GRANT.search(stmt)
        if not create and not grant:
            continue
        sibling = _SIBLING.search(stmt)
        head = stmt.split(".createUser" if create else ".grantRolesToUser", 1)[0].strip().split(".")[0]
        target = sibling.group(1) if sibling else aliases.get(head, current)
        if target != db:
            continue
        if create:
            body = create.group(1)
            name = re.search(_FIELD.format("user"), body)
            pwd = re.search(_FIELD.format("pwd"), body)
            if name and name.group(1) == user:
                roles = [{"role": r, "db": d} for r, d in _ROLE_DOC.findall(body)]
                found = {"pwd": pwd.group(1) if pwd else "", "roles": roles}
        elif grant and found is not None and grant.group(1) == user:
            roles_so_far = cast(list[Obj], found["roles"])
            for r, d in _ROLE_DOC.findall(grant.group(2)):
                if {"role": r, "db": d} not in roles_so_far:
                    roles_so_far.append({"role": r, "db": d})
    return found
