"""MongoDB as state: users and roles per database, kept per *volume* so they survive pod restarts, plus the subset of
the ``mongo`` / ``mongosh`` shell that the AIOpsLab faults and their fixes use.

Why per volume: the faults revoke or drop a user inside the running mongod and then delete the *client* pod; the fix
must be applied to the same data. A mongod restart keeps its users because they live on the PersistentVolume; a
namespace deleted and redeployed onto a surviving hostPath PV finds the old users again. So the store is keyed by the
storage identity (hostPath path, PV name, or the pod for ephemeral storage) that the behaviour derives from the pod.

The shell evaluates a small JavaScript subset: statements separated by ``;`` or new lines; ``db``,
``db.getSiblingDB(name)``, ``use name``, ``db = ...``; the user-management methods; ``print``/``printjson``; literals
(objects with bare or quoted keys, arrays, strings in either quote, numbers, booleans, null).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

ROLE_READ = {"read", "readWrite", "dbOwner"}
ROLE_WRITE = {"readWrite", "dbOwner"}
ROLE_USERADMIN = {"userAdmin", "dbOwner"}
ANY_READ = {"readAnyDatabase", "readWriteAnyDatabase", "root"}
ANY_WRITE = {"readWriteAnyDatabase", "root"}
ANY_USERADMIN = {"userAdminAnyDatabase", "root"}


@dataclass
class MongoUser:
    user: str
    db: str
    pwd: str
    roles: list[tuple[str, str]] = field(default_factory=list)
    user_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def doc(self) -> dict[str, Any]:
        return {
            "_id": f"{self.db}.{self.user}",
            "userId": f'UUID("{self.user_id}")',
            "user": self.user,
            "db": self.db,
            "roles": [{"role": r, "db": d} for r, d in self.roles],
            "mechanisms": ["SCRAM-SHA-1", "SCRAM-SHA-256"],
        }


class MongoError(Exception):
    """A server-side error as the shell or a driver reports it."""

    def __init__(self, message: str, code_name: str = "") -> None:
        super().__init__(message)
        self.code_name = code_name


@dataclass
class MongoState:
    """One mongod's data directory."""

    initialised: bool = False
    fcv: str = "4.4"
    """featureCompatibilityVersion of the data files (the server version that initialised them)."""
    users: dict[tuple[str, str], MongoUser] = field(default_factory=dict)
    collections: set[tuple[str, str]] = field(default_factory=set)

    # -- authentication and authorisation ------------------------------------------------------------------------
    def authenticate(self, user: str, pwd: str, auth_db: str = "admin") -> MongoUser:
        u = self.users.get((auth_db, user))
        if u is None:
            raise MongoError(f'Could not find user "{user}" for db "{auth_db}"', "UserNotFound")
        if u.pwd != pwd:
            raise MongoError("Authentication failed.", "AuthenticationFailed")
        return u

    @staticmethod
    def allowed(u: MongoUser | None, db: str, access: str) -> bool:
        """Whether ``u`` may ``access`` (read, write, userAdmin) ``db``. None means an unauthenticated client."""
        if u is None:
            return False
        local, anydb = {
            "read": (ROLE_READ, ANY_READ),
            "write": (ROLE_WRITE, ANY_WRITE),
            "userAdmin": (ROLE_USERADMIN, ANY_USERADMIN),
        }[access]
        return any((role in local and rdb == db) or (role in anydb and rdb == "admin") for role, rdb in u.roles)

    # -- user management -----------------------------------------------------------------------------------------
    def create_user(self, db: str, doc: dict[str, Any]) -> MongoUser:
        name, pwd = str(doc.get("user", "")), str(doc.get("pwd", ""))
        if not name:
            raise MongoError("couldn't add user: no user field")
        if (db, name) in self.users:
            raise MongoError(f'couldn\'t add user: User "{name}@{db}" already exists', "Location51003")
        u = MongoUser(name, db, pwd, _roles(doc.get("roles", []), db))
        self.users[(db, name)] = u
        return u

    def drop_user(self, db: str, name: str) -> bool:
        return self.users.pop((db, name), None) is not None

    def grant(self, db: str, name: str, roles: list[Any]) -> None:
        u = self._user(db, name)
        for r in _roles(roles, db):
            if r not in u.roles:
                u.roles.append(r)

    def revoke(self, db: str, name: str, roles: list[Any]) -> None:
        u = self._user(db, name)
        gone = set(_roles(roles, db))
        u.roles = [r for r in u.roles if r not in gone]

    def _user(self, db: str, name: str) -> MongoUser:
        u = self.users.get((db, name))
        if u is None:
            raise MongoError(f'Could not find user "{name}" for db "{db}"', "UserNotFound")
        return u


def _roles(roles: Any, db: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for r in roles if isinstance(roles, list) else [roles]:
        if isinstance(r, str):
            out.append((r, db))
        elif isinstance(r, dict) and "role" in r:
            out.append((str(r["role"]), str(r.get("db", db))))
        else:
            raise MongoError(f"Invalid role document: {tojson(r)}", "BadValue")
    return out


# ---------------------------------------------------------------------------------------------------- JS literals
_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)|(?P<id>[A-Za-z_$][\w$]*)"""
    r"""|(?P<nl>\n)|(?P<p>[{}\[\](),:.;=]))"""
)


class ShellError(Exception):
    pass


def _tokens(src: str) -> list[tuple[str, Any]]:
    src = re.sub(r"//[^\n]*", "", src)
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(src):
        if src[pos] in " \t\r":
            pos += 1
            continue
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise ShellError(f"SyntaxError: illegal character {src[pos]!r}")
        pos = m.end()
        if m.group("str") is not None:
            raw = m.group("str")[1:-1]
            out.append(("str", re.sub(r"\\(.)", r"\1", raw)))
        elif m.group("num") is not None:
            n = m.group("num")
            out.append(("lit", float(n) if "." in n else int(n)))
        elif m.group("id") is not None:
            word = m.group("id")
            lits = {"true": True, "false": False, "null": None, "undefined": None}
            out.append(("lit", lits[word]) if word in lits else ("id", word))
        elif m.group("nl") is not None:
            out.append(("p", ";"))
        else:
            out.append(("p", m.group("p")))
    return out


@dataclass
class _DbRef:
    name: str


class Shell:
    """Evaluates a script against one mongod's state, as a client authenticated (or not) with shell options."""

    def __init__(self, state: MongoState, auth_enabled: bool, db: str, principal: MongoUser | None) -> None:
        self.state, self.auth_enabled, self.db, self.principal = state, auth_enabled, db, principal
        self.out: list[str] = []
        self.toks: list[tuple[str, Any]] = []
        self.i = 0

    # -- parsing -------------------------------------------------------------------------------------------------
    def run(self, src: str) -> Any:
        self.toks, self.i = _tokens(src), 0
        last: Any = None
        while self.i < len(self.toks):
            if self._peek() == ("p", ";"):
                self.i += 1
                continue
            last = self._statement()
        return last

    def _peek(self, k: int = 0) -> tuple[str, Any] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def _next(self) -> tuple[str, Any]:
        t = self._peek()
        if t is None:
            raise ShellError("SyntaxError: unexpected end of input")
        self.i += 1
        return t

    def _expect(self, p: str) -> None:
        t = self._next()
        if t != ("p", p):
            raise ShellError(f"SyntaxError: expected {p!r} but found {t[1]!r}")

    def _statement(self) -> Any:
        t = self._peek()
        if t and t[0] == "id" and t[1] in ("var", "let", "const"):
            self.i += 1
            t = self._peek()
        if t == ("id", "use") and (n := self._peek(1)) and n[0] == "id":
            self.i += 2
            self.db = n[1]
            self.out.append(f"switched to db {self.db}")
            return None
        if t and t[0] == "id" and self._peek(1) == ("p", "="):
            self.i += 2
            value = self._expr()
            if t[1] == "db" and isinstance(value, _DbRef):
                self.db = value.name
            return None
        return self._expr()

    def _expr(self) -> Any:
        t = self._next()
        if t[0] == "id":
            name = t[1]
            if self._peek() == ("p", "("):
                return self._function(name, self._args())
            if name == "db":
                value: Any = _DbRef(self.db)
            else:
                raise ShellError(f"ReferenceError: {name} is not defined")
            while self._peek() == ("p", "."):
                self.i += 1
                attr = self._next()
                if attr[0] != "id":
                    raise ShellError("SyntaxError: missing name after . operator")
                if self._peek() == ("p", "("):
                    value = self._method(value, attr[1], self._args())
                elif isinstance(value, _DbRef):
                    value = _Collection(value.name, attr[1])
                else:
                    raise ShellError(f"TypeError: cannot read property {attr[1]!r}")
            return value
        self.i -= 1
        return self._literal()

    def _args(self) -> list[Any]:
        self._expect("(")
        args: list[Any] = []
        while self._peek() != ("p", ")"):
            args.append(self._expr())
            if self._peek() == ("p", ","):
                self.i += 1
        self._expect(")")
        return args

    def _literal(self) -> Any:
        t = self._next()
        if t[0] in ("str", "lit"):
            return t[1]
        if t == ("p", "{"):
            obj: dict[str, Any] = {}
            while self._peek() != ("p", "}"):
                k = self._next()
                if k[0] not in ("id", "str"):
                    raise ShellError(f"SyntaxError: invalid property id {k[1]!r}")
                self._expect(":")
                obj[str(k[1])] = self._expr()
                if self._peek() == ("p", ","):
                    self.i += 1
            self._expect("}")
            return obj
        if t == ("p", "["):
            arr: list[Any] = []
            while self._peek() != ("p", "]"):
                arr.append(self._expr())
                if self._peek() == ("p", ","):
                    self.i += 1
            self._expect("]")
            return arr
        raise ShellError(f"SyntaxError: unexpected token {t[1]!r}")

    # -- evaluation ----------------------------------------------------------------------------------------------
    def _function(self, name: str, args: list[Any]) -> Any:
        if name in ("print", "printjson", "printjsononeline"):
            self.out.append(" ".join(a if isinstance(a, str) and name == "print" else tojson(a) for a in args))
            return None
        raise ShellError(f"ReferenceError: {name} is not defined")

    def _require(self, db: str, command: str, args: dict[str, Any]) -> None:
        if not self.auth_enabled:
            return
        if self.principal is None:
            if not self.state.users:  # the localhost exception
                return
            raise ShellError(f"Error: command {command} requires authentication")
        if not MongoState.allowed(self.principal, db, "userAdmin"):
            raise ShellError(f"Error: not authorized on {db} to execute command {tojson(args)}")

    def _method(self, target: Any, name: str, args: list[Any]) -> Any:
        if isinstance(target, _Collection):
            return self._collection_method(target, name, args)
        if not isinstance(target, _DbRef):
            raise ShellError(f"TypeError: {name} is not a function")
        db, st = target.name, self.state
        try:
            if name == "getSiblingDB":
                return _DbRef(str(args[0]))
            if name == "getName":
                return db
            if name == "auth":
                self.principal = st.authenticate(str(args[0]), str(args[1]), db)
                return 1
            if name == "createUser":
                doc = args[0] if args and isinstance(args[0], dict) else {}
                self._require(db, "createUser", {"createUser": doc.get("user")})
                u = st.create_user(db, doc)
                roles = [{"role": r, "db": d} for r, d in u.roles]
                self.out.append("Successfully added user: " + tojson({"user": u.user, "roles": roles}))
                return None
            if name == "dropUser":
                self._require(db, "dropUser", {"dropUser": args[0]})
                return st.drop_user(db, str(args[0]))
            if name in ("grantRolesToUser", "revokeRolesFromUser"):
                self._require(db, name, {name: args[0]})
                change = st.grant if name == "grantRolesToUser" else st.revoke
                change(db, str(args[0]), args[1] if len(args) > 1 else [])
                return None
            if name in ("getUsers", "getUser"):
                self._require(db, "usersInfo", {"usersInfo": args[0] if args else 1})
                if name == "getUser":
                    found = st.users.get((db, str(args[0])))
                    return found.doc() if found else None
                return [u.doc() for (d, _), u in sorted(st.users.items()) if d == db]
            if name == "version":
                return "4.4.6"
        except MongoError as e:
            verb = {"createUser": "couldn't add user: ", "dropUser": "", "grantRolesToUser": ""}.get(name, "")
            msg = str(e) if str(e).startswith("couldn't") else verb + str(e)
            raise ShellError(f"Error: {msg}") from e
        raise ShellError(f"TypeError: db.{name} is not a function")

    def _collection_method(self, coll: _Collection, name: str, args: list[Any]) -> Any:
        need = "write" if name in ("insert", "insertOne", "insertMany", "createIndex", "drop") else "read"
        if self.auth_enabled and not MongoState.allowed(self.principal, coll.db, need):
            raise ShellError(f'Error: not authorized on {coll.db} to execute command {{ {name}: "{coll.name}" }}')
        if need == "write":
            self.state.collections.add((coll.db, coll.name))
            return {"acknowledged": True}
        return 0 if name in ("count", "countDocuments") else []


@dataclass
class _Collection:
    db: str
    name: str


def tojson(v: Any) -> str:
    """The shell's ``tojson`` on one line: ``{ "user" : "admin", "roles" : [ ] }``."""
    if isinstance(v, dict):
        if not v:
            return "{ }"
        return "{ " + ", ".join(f"{json.dumps(k)} : {tojson(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[ " + ", ".join(tojson(x) for x in v) + " ]" if v else "[ ]"
    if isinstance(v, str) and v.startswith("UUID("):
        return v
    if v is None:
        return "null"
    return json.dumps(v)


# ------------------------------------------------------------------------------------------------ the command line
@dataclass
class ShellOptions:
    program: str
    db: str = "test"
    user: str | None = None
    password: str | None = None
    auth_db: str | None = None
    eval: str | None = None
    quiet: bool = False


def parse_shell_args(argv: list[str]) -> ShellOptions:
    opts = ShellOptions(program=argv[0].rsplit("/", 1)[-1])
    i = 1

    def val(a: str, inline: str) -> str:
        nonlocal i
        if inline:
            return inline
        i += 1
        if i >= len(argv):
            raise ShellError(f"Error parsing command line: required parameter is missing in '{a}'")
        return argv[i]

    while i < len(argv):
        a = argv[i]
        key, _, inline = a.partition("=")
        if key in ("-u", "--username"):
            opts.user = val(a, inline)
        elif key in ("-p", "--password"):
            opts.password = val(a, inline)
        elif key == "--authenticationDatabase":
            opts.auth_db = val(a, inline)
        elif key == "--eval":
            opts.eval = val(a, inline)
        elif key == "--quiet":
            opts.quiet = True
        elif key in ("--host", "--port", "--authenticationMechanism"):
            val(a, inline)
        elif key.startswith("-"):
            pass
        elif a.startswith("mongodb://"):
            m = re.match(r"mongodb://(?:([^:@/]+):([^@/]*)@)?[^/?]*/?([^?]*)", a)
            if m:
                opts.user = opts.user or m.group(1)
                opts.password = opts.password or m.group(2)
                opts.db = m.group(3) or opts.db
        else:
            opts.db = a.split("/")[-1] or opts.db
        i += 1
    return opts


def run_shell(state: MongoState, auth_enabled: bool, argv: list[str]) -> tuple[str, str, int, list[str]]:
    """Run ``mongo ...``/``mongosh ...``. Returns stdout, stderr, exit code and mongod log lines it caused."""
    server_logs: list[str] = []
    try:
        opts = parse_shell_args(argv)
    except ShellError as e:
        return "", str(e) + "\n", 2, server_logs
    legacy = opts.program == "mongo"
    out: list[str] = []
    if legacy and not opts.quiet:
        out += [
            "MongoDB shell version v4.4.6",
            f"connecting to: mongodb://127.0.0.1:27017/{opts.db}?compressors=disabled&gssapiServiceName=mongodb",
            f'Implicit session: session {{ "id" : UUID("{uuid.uuid4()}") }}',
            "MongoDB server version: 4.4.6",
        ]
    principal: MongoUser | None = None
    if opts.user:
        auth_db = opts.auth_db or opts.db
        try:
            principal = state.authenticate(opts.user, opts.password or "", auth_db)
        except MongoError as e:
            server_logs.append(auth_failure_log(opts.user, auth_db, e, "127.0.0.1:50312"))
            if legacy:
                err = "Error: Authentication failed. :\nconnect@src/mongo/shell/mongo.js:374:17\n@(connect):2:6\n"
                err += "exception: connect failed\nexiting with code 1\n"
            else:
                err = "MongoServerError: Authentication failed.\n"
            return "\n".join(out) + ("\n" if out else ""), err, 1, server_logs
    if opts.eval is None:
        return "\n".join(out) + "\n", "", 0, server_logs
    shell = Shell(state, auth_enabled, opts.db, principal)
    try:
        last = shell.run(opts.eval)
    except ShellError as e:
        text = "\n".join(out + shell.out)
        return (text + "\n" if text else ""), f"uncaught exception: {e} :\n", 1, server_logs
    lines = out + shell.out
    if not legacy and last is not None:
        lines.append(tojson(last) if not isinstance(last, str) else last)
    return ("\n".join(lines) + "\n" if lines else ""), "", 0, server_logs


def auth_failure_log(user: str, auth_db: str, err: MongoError, remote: str) -> str:
    """mongod 4.4's structured log line for a failed authentication."""
    detail = f"{err.code_name}: {err}" if err.code_name else str(err)
    return json.dumps(
        {
            "t": {"$date": "now"},
            "s": "I",
            "c": "ACCESS",
            "id": 20249,
            "ctx": "conn",
            "msg": "Authentication failed",
            "attr": {
                "mechanism": "SCRAM-SHA-1",
                "speculative": False,
                "principalName": user,
                "authenticationDatabase": auth_db,
                "remote": remote,
                "extraInfo": {},
                "error": detail,
            },
        },
        separators=(",", ":"),
    )


def split_command(command: list[str], env: dict[str, str] | None = None) -> list[str]:
    """``sh -c "mongo ..." [arg0 args...]`` -> ``["mongo", ...]``; other commands unchanged.

    Like a shell, ``$NAME``/``${NAME}`` expand to the container's environment and ``$0``..``$9`` to the arguments
    after the script, outside single quotes; a leading ``exec`` is dropped. An expansion is one word (no field
    splitting), which is what the quoted ``"$VAR"`` form every careful script uses means anyway.
    """
    if len(command) >= 3 and command[0].rsplit("/", 1)[-1] in ("sh", "bash") and command[1] == "-c":
        words = _shell_words(command[2], env or {}, command[3:])
        return words[1:] if words[:1] == ["exec"] else words
    return command


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|([0-9]))")


def _shell_words(script: str, env: dict[str, str], args: list[str]) -> list[str]:
    words: list[str] = []
    cur: list[str] = []
    started = False
    quote = ""
    i = 0

    def expand(at: int) -> tuple[str, int] | None:
        m = _VAR.match(script, at)
        if m is None:
            return None
        name, plain, digit = m.groups()
        if digit is not None:
            n = int(digit)
            return (args[n] if n < len(args) else ""), m.end()
        return env.get(name or plain, ""), m.end()

    while i < len(script):
        c = script[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                cur.append(c)
            i += 1
            continue
        if c == "\\" and i + 1 < len(script):
            cur.append(script[i + 1])
            started = True
            i += 2
            continue
        if c == "$":
            hit = expand(i)
            if hit is not None:
                cur.append(hit[0])
                started = True
                i = hit[1]
                continue
        if quote == '"':
            if c == '"':
                quote = ""
            else:
                cur.append(c)
            i += 1
            continue
        if c in "'\"":
            quote = c
            started = True
        elif c.isspace():
            if started:
                words.append("".join(cur))
            cur, started = [], False
        else:
            cur.append(c)
            started = True
        i += 1
    if started:
        words.append("".join(cur))
    return words
