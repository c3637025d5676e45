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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Obj = dict[str, Any]
INIT_DIR = "/docker-entrypoint-initdb.d"
ROOT_USER_ENV = "MONGO_INITDB_ROOT_USERNAME"
ROOT_PASSWORD_ENV = "MONGO_INITDB_ROOT_PASSWORD"
_DB = re.compile(r"[A-Za-z0-9_-]{1,63}", re.ASCII)
_USER = re.compile(r"[A-Za-z0-9_.@-]{1,64}", re.ASCII)
_ROLE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}", re.ASCII)


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


@dataclass(frozen=True)
class Operation:
    """One catalogue entry: its arguments, its inverse, and how its script is made."""

    name: str
    summary: str
    args: type[BaseModel]
    inverse: str | None
    """The operation that undoes this one (same arguments); None: never run forward."""
    script: Callable[[Any, Callable[[str, str], Obj | None], Obj], str]


def _js(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _sibling(db: str) -> str:
    return f"db.getSiblingDB({_js(db)})"


def _roles(args: MongoUserRoles) -> list[Obj]:
    return [r.model_dump() for r in args.roles]


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


CATALOGUE: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "mongodb.grant_roles",
            "Grant an existing MongoDB user roles its init scripts declare for it.",
            MongoUserRoles,
            "mongodb.revoke_roles",
            _grant,
        ),
        Operation(
            "mongodb.revoke_roles",
            "Revoke from a MongoDB user roles its init scripts declare for it.",
            MongoUserRoles,
            "mongodb.grant_roles",
            _revoke,
        ),
        Operation(
            "mongodb.create_declared_user",
            "Recreate a MongoDB user exactly as the database's init scripts declare it (password and roles are read "
            "from the scripts at run time).",
            MongoUser,
            "mongodb.drop_user",
            _create_declared,
        ),
        Operation(
            "mongodb.drop_user",
            "Drop a MongoDB user (only as the undo of mongodb.create_declared_user: a dropped password is gone).",
            MongoUser,
            None,
            _drop,
        ),
    )
}
"""Every data-plane operation Stratus runs, by name."""


def describe_catalogue() -> str:
    return "; ".join(
        f"{op.name}({', '.join(op.args.model_fields)}): {op.summary}" for op in CATALOGUE.values() if op.inverse
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


def inverse_of(name: str, args: Obj) -> tuple[str, Obj] | None:
    """The catalogue inverse (operation, arguments), or None when the operation may not run forward."""
    op = operation(name)
    if op.inverse is None:
        return None
    return op.inverse, check_args(op.inverse, args)


def _env_names(container: Obj) -> set[str]:
    return {str(e.get("name")) for e in container.get("env") or [] if isinstance(e, dict)}


def render(
    name: str, args: Obj, pod: Obj, container: Obj, read_configmap: Callable[[str, str], Obj | None]
) -> list[str]:
    """The argv for ``name`` in ``container``: the container's shell runs the client with the credentials of the
    container's own environment (``"$VAR"``) and the script as a positional argument."""
    op = operation(name)
    typed = op.args.model_validate(args)
    script = op.script(typed, read_configmap, pod)
    auth = ""
    if {ROOT_USER_ENV, ROOT_PASSWORD_ENV} <= _env_names(container):
        auth = f' -u "${ROOT_USER_ENV}" -p "${ROOT_PASSWORD_ENV}" --authenticationDatabase admin'
    return ["sh", "-c", f'exec mongo admin --quiet{auth} --eval "$1"', "stratus-dataplane", script]


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
