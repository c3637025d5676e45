"""Scrubbing credentials out of everything Stratus keeps or shows: events, dead letters, journal audit fields, logs
and tracebacks, URLs, exec command lines and their output; and redacting Secrets on the read face.

Why it is shaped this way: a list of leaked strings only catches yesterday's leak. The scrubber follows the
*structure* that carries a credential instead:

- a key that names one (``DB_PASSWORD=``, ``"apiKey":``, ``pwd: '...'``, a ``{name: X_TOKEN, value: ...}`` env entry),
  judged on the key's last words, so ``PASSWORD_FILE=/run/secrets/db``, ``secretName: db-creds`` or ``token_ttl=60``
  (which name *where* a credential lives, or how it behaves) stay readable;
- URL userinfo (``scheme://user:PASSWORD@host``), ``Authorization``/``Bearer`` headers and cookies;
- command-line flags that take a credential: ``--password``-like long flags of any program, and the short flags of
  the common database clients (``mysql -pX``, ``mongo -p X``, ``redis-cli -a X``, ``sqlcmd -P X``, ``curl -u u:X``);
- self-describing formats: PEM blocks, JSON Web Tokens (``eyJ...`` header and payload), cloud access key ids.

``scrub_text`` works on free text; ``scrub_obj`` on decoded JSON (keys are structure; a list of strings is read as an
argv). Both are idempotent: scrubbing scrubbed text changes nothing. ``redact_secret`` blanks a Secret object's values
for the read face (agents see that a key exists, never its value).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

MASK = "***"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

log = logging.getLogger(__name__)

# --- which keys name a credential -------------------------------------------------------------------------------

_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "cookie",
        "privatekey",
        "secretkey",
        "accesskey",
    }
)
_KEY_QUALIFIERS = frozenset(
    {"api", "access", "secret", "private", "signing", "encryption", "master", "account", "auth", "shared", "client"}
)
"""``<qualifier>_key`` names a credential (``API_KEY``, ``secret_access_key``); a bare ``key`` does not."""
_NOT_A_VALUE = frozenset(
    {
        "file",
        "path",
        "dir",
        "name",
        "ref",
        "reference",
        "id",
        "length",
        "len",
        "min",
        "max",
        "ttl",
        "expiry",
        "expires",
        "expiration",
        "timeout",
        "policy",
        "type",
        "enabled",
        "required",
        "url",
        "endpoint",
        "header",
        "mode",
        "format",
        "hash",
        "algorithm",
        "count",
        "size",
        "source",
        "from",
        "key",
        "keys",
        "namespace",
        "version",
    }
)
"""Last words that make a key name *about* a credential, not the credential (``PASSWORD_FILE``, ``secretKeyRef``)."""

_RUN_ON = ("password", "passwd", "secret", "token", "apikey", "passphrase")
"""Words run together in capitals still end in one of these (``PGPASSWORD``, ``MYSQLPASSWORD``)."""

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def key_words(key: str) -> list[str]:
    """``MONGO_INITDB_ROOT_PASSWORD`` -> [mongo, initdb, root, password]; ``clientSecret`` -> [client, secret]."""
    return [w.lower() for w in _WORD.findall(key)]


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a key (env var, JSON/YAML key, flag name, query parameter) names a credential's value (memoised: the
    same few keys come back in every object)."""
    words = key_words(key)
    if not words or len(key) > 128:
        return False
    last = words[-1]
    if last in _SECRET_WORDS or last.endswith(_RUN_ON):
        return True
    if last == "key" and len(words) > 1:
        return words[-2] in _KEY_QUALIFIERS or words[-2] in _SECRET_WORDS
    if len(words) > 1 and last not in _NOT_A_VALUE:
        joined = "".join(words[-2:])
        return joined in _SECRET_WORDS
    return False


# --- free text --------------------------------------------------------------------------------------------------

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----.*?(?:-----END \1-----|\Z)", re.S)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_CLOUD_KEYS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA)[A-Z2-7]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|gh[pousr]_[A-Za-z0-9]{36,255}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{60,255}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|(?:sk|rk)_live_[A-Za-z0-9]{20,}"  # Stripe secret keys
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab tokens
    r")(?![A-Za-z0-9])"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,30}://[^\s/?#@:'\"]*:)([^\s/?#@'\"]+)(@)")
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|x-auth-token|api-key|cookie|set-cookie)(\s*[:=]\s*)"
    r"(?:(basic|bearer|digest|token|negotiate|aws4-hmac-sha256)\s+)?([^\r\n\"']+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|token)([ \t]+)([A-Za-z0-9._~+/=-]{12,})")
_BASIC = re.compile(r"(?i)\b(basic)([ \t]+)([A-Za-z0-9+/]{4,}={0,2})")
_KEY = r"[A-Za-z_][A-Za-z0-9_.-]{0,127}"
_ASSIGN = re.compile(
    rf"""(?x)
    (?P<q>["']?)(?P<key>{_KEY})(?P=q)      # a key, maybe quoted
    (?P<sep>[ \t]*[=:][ \t]*)             # = or :
    (?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,;&}})\]"']+)
    """
)
_ENV_ENTRY = re.compile(
    rf"""(?x)
    (?P<head>["']?name["']?\s*[:=]\s*["']?(?P<key>{_KEY})["']?\s*[,\n]\s*(?:-\s*)?["']?value["']?\s*[:=]\s*)
    (?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,;}}\]]+)
    """
)
_SQL_PASSWORD = re.compile(r"(?i)\b(password|identified\s+by)(\s+)('(?:[^'\n]|'')*'|\"[^\"\n]*\")")
_LONG_FLAG = re.compile(r"(?P<flag>--?[A-Za-z][A-Za-z0-9-]{1,63})(?P<sep>=|[ \t]+)(?P<value>\"[^\"]*\"|'[^']*'|\S+)")

_DB_CLIENTS: dict[str, tuple[str, bool]] = {}
"""Program -> (its short credential flag, whether the value may be a separate argument)."""
for _prog in ("mysql", "mariadb", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mariadb-dump", "mysqlsh"):
    _DB_CLIENTS[_prog] = ("-p", False)  # mysql -p VALUE prompts and VALUE is the database: only -pVALUE is one
for _prog in ("mongo", "mongosh", "mongodump", "mongorestore", "mongoexport", "mongoimport", "mongostat", "mongotop"):
    _DB_CLIENTS[_prog] = ("-p", True)
for _prog in ("mongofiles", "cqlsh", "rabbitmqadmin", "sshpass", "influx", "clickhouse-client", "vertica", "vsql"):
    _DB_CLIENTS[_prog] = ("-p", True)
for _prog in ("redis-cli", "keydb-cli", "valkey-cli"):
    _DB_CLIENTS[_prog] = ("-a", True)
for _prog in ("sqlcmd", "bcp", "isql"):
    _DB_CLIENTS[_prog] = ("-P", True)
_USER_PASS_FLAGS = {"curl": ("-u", "--user"), "wget": ("--http-password", "--password")}
_SEPARATORS = frozenset({"|", "||", "&&", ";", "&", "(", ")", "\n"})


def _mask_value(value: str) -> str:
    if value in (MASK, f'"{MASK}"', f"'{MASK}'") or not value or value.strip("\"'").startswith("$"):
        return value  # nothing, already masked, or a reference to a variable ("$MONGO_PASSWORD")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{value[0]}{MASK}{value[0]}"
    return MASK


def scrub_text(text: str) -> str:
    """``text`` with every credential the module docstring describes replaced by ``***``. Never raises: text the
    scrubber cannot read is withheld whole (fail closed), since its callers are log pumps and publishers."""
    if not text:
        return text
    try:
        return _scrub_short(text) if len(text) <= _MEMO_CHARS else _scrub_text(text)
    except Exception:  # a bug here must not kill a log pump or lose an event, nor leak what it could not read
        log.debug("scrub: unreadable text withheld", exc_info=False)
        return f"{MASK} (withheld: the scrubber could not read {len(text)} characters)"


_MEMO_CHARS = 512
"""Texts up to this length are scrubbed once and remembered (``_scrub_short``): the same short strings (a write's
message, an action's fields) come back for every journal record, and scrubbing is a pure function of the text."""


@lru_cache(maxsize=1024)
def _scrub_short(text: str) -> str:
    return _scrub_text(text)


_PLAIN = re.compile(r"[A-Za-z0-9_./-]*")
"""One word with no separator, quote, '=', ':' or '@': only a self-describing token (JWT, cloud key) can hide in it."""


def _scrub_text(text: str) -> str:
    if _PLAIN.fullmatch(text) and "eyJ" not in text and not _CLOUD_KEYS.search(text):
        return text
    text = _PEM.sub(_pem, text)
    text = _JWT.sub(MASK, text)
    text = _CLOUD_KEYS.sub(MASK, text)
    text = _URL_USERINFO.sub(lambda m: m.group(1) + (m.group(2) if m.group(2) == MASK else MASK) + m.group(3), text)
    text = _AUTH_HEADER.sub(_auth_header, text)
    text = _BEARER.sub(_bearer, text)
    text = _BASIC.sub(_basic, text)
    text = _ENV_ENTRY.sub(
        lambda m: m.group("head") + _mask_value(m.group("value")) if is_secret_key(m.group("key")) else m.group(0),
        text,
    )
    text = _ASSIGN.sub(_assignment, text)
    text = _SQL_PASSWORD.sub(lambda m: m.group(1) + m.group(2) + _mask_value(m.group(3)), text)
    text = _LONG_FLAG.sub(_long_flag, text)
    return "\n".join(_scrub_command_line(line) for line in text.split("\n"))


def _pem(m: re.Match[str]) -> str:
    return f"-----BEGIN {m.group(1)}----- {MASK} -----END {m.group(1)}-----"


def _bearer(m: re.Match[str]) -> str:
    token = m.group(3)
    looks_random = any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
    return m.group(1) + m.group(2) + MASK if looks_random else m.group(0)


def _basic(m: re.Match[str]) -> str:
    """``Basic`` credentials are base64 of ``user:password``: masked only when they decode to that."""
    try:
        decoded = base64.b64decode(m.group(3) + "=" * (-len(m.group(3)) % 4), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return m.group(0)
    return m.group(1) + m.group(2) + MASK if ":" in decoded and decoded.isprintable() else m.group(0)


def _auth_header(m: re.Match[str]) -> str:
    return f"{m.group(1)}{m.group(2)}{MASK}"


def _assignment(m: re.Match[str]) -> str:
    if not is_secret_key(m.group("key")):
        value = m.group("value")
        if value[:1] not in "\"'" and ("=" in value or ":" in value):
            # "reason: DB_PASSWORD=..." : the value holds an assignment of its own, which the match swallowed
            inner = _ASSIGN.sub(_assignment, value)
            return m.group(0)[: m.start("value") - m.start(0)] + inner
        return m.group(0)
    value = m.group("value")
    if value.startswith(("-----BEGIN", "$", "{", "[")) or value in ("null", "None", "true", "false"):
        return m.group(0)  # a reference (${VAR}), an object, or nothing to hide
    if value.isdigit() and len(value) < 8:
        return m.group(0)  # a count, a port, a fencing token: credentials are not short numbers
    if m.group("key").lower() in ("pwd", "oldpwd") and value.strip("\"'").startswith("/"):
        return m.group(0)  # the shell's working directory
    return f"{m.group('q')}{m.group('key')}{m.group('q')}{m.group('sep')}{_mask_value(value)}"


def _long_flag(m: re.Match[str]) -> str:
    flag = m.group("flag")
    if not flag.startswith("--") or not is_secret_key(flag.lstrip("-")):
        return m.group(0)
    value = m.group("value")
    if m.group("sep") != "=" and value.startswith("-"):
        return m.group(0)  # the next flag: this one prompts
    return f"{flag}{m.group('sep')}{_mask_value(value)}"


_TOKEN = re.compile(r"""(?:'[^']*'|"(?:[^"\\]|\\.)*"|[^\s'"]+)+""")
_PUNCT = "[](),;\"'"


def _scrub_command_line(line: str, depth: int = 0) -> str:
    """The program-specific short flags (``-pSECRET``, ``-p SECRET``, ``-a SECRET``, ``-u user:SECRET``), token by
    token in place (quotes kept together), so text around them keeps its spacing."""
    if "-p" not in line and not any(p in line for p in (*_DB_CLIENTS, *_USER_PASS_FLAGS)):
        return line
    spans = list(_TOKEN.finditer(line))
    words = [m.group(0) for m in spans]
    masked = _argv_pass(list(words), depth)
    if masked == words:
        return line
    out, last = [], 0
    for m, word in zip(spans, masked, strict=True):
        out.append(line[last : m.start()])
        out.append(word)
        last = m.end()
    out.append(line[last:])
    return "".join(out)


def scrub_argv(argv: list[str]) -> list[str]:
    """A command's arguments with credential values masked, per program (see the module docstring)."""
    return [scrub_text(t) for t in _argv_pass(list(argv))]


def _core(token: str) -> tuple[str, str, str]:
    """A token without the punctuation of a list or a call around it: ``['-p',`` -> ("['", "-p", "',")."""
    core = token.strip(_PUNCT)
    if not core:
        return token, "", ""
    start = token.index(core)
    return token[:start], core, token[start + len(core) :]


def _mask_core(token: str, mask: Callable[[str], str] | None = None) -> str:
    head, core, tail = _core(token)
    return head + (mask or _mask_value)(core) + tail if core else token


def _argv_pass(out: list[str], depth: int = 0) -> list[str]:
    program: str | None = None
    i = 0
    while i < len(out):
        head, token, tail = _core(out[i])
        if any(c.isspace() for c in token) and token != out[i] and depth < 4:
            out[i] = head + _scrub_command_line(token, depth + 1) + tail  # a quoted command line (sh -c '...')
            i += 1
            continue
        nxt = _core(out[i + 1])[1] if i + 1 < len(out) else None
        base = token.rsplit("/", 1)[-1]
        if base in _DB_CLIENTS or base in _USER_PASS_FLAGS:
            program = base
        elif token in _SEPARATORS or out[i] in _SEPARATORS:
            program = None
        elif program is None and token == "-p" and nxt is not None and not nxt.startswith("-") and _after_user(out, i):
            out[i + 1] = _mask_core(out[i + 1])  # "-u USER -p PASSWORD", whatever the program
            i += 1
        elif program in _DB_CLIENTS:
            flag, separate = _DB_CLIENTS[program]
            if token == flag and separate and nxt is not None and not nxt.startswith("-"):
                out[i + 1] = _mask_core(out[i + 1])
                i += 1
            elif token.startswith(flag) and len(token) > len(flag) and not token.startswith("--"):
                out[i] = out[i].replace(token, flag + _mask_value(token[len(flag) :]), 1)
        elif program in _USER_PASS_FLAGS:
            short, long = _USER_PASS_FLAGS[program]
            if token in (short, long) and nxt is not None:
                out[i + 1] = _mask_core(out[i + 1], _mask_user_pass)
                i += 1
            elif token.startswith(long + "="):
                out[i] = out[i].replace(token, long + "=" + _mask_user_pass(token[len(long) + 1 :]), 1)
        if token.startswith("--") and is_secret_key(token.partition("=")[0].lstrip("-")):
            name, eq, value = token.partition("=")
            if eq:
                out[i] = out[i].replace(token, f"{name}={_mask_value(value)}", 1)
            elif nxt is not None and not nxt.startswith("-"):
                out[i + 1] = _mask_core(out[i + 1])
                i += 1
        i += 1
    return out


def _after_user(argv: list[str], i: int) -> bool:
    before = [_core(t)[1] for t in argv[max(0, i - 2) : i]]
    return (len(before) == 2 and before[0] in ("-u", "--username", "--user")) or (
        len(before) >= 1 and before[-1].startswith("-u") and len(before[-1]) > 2 and not before[-1].startswith("--")
    )


def _mask_user_pass(value: str) -> str:
    user, colon, _ = value.partition(":")
    return f"{user}:{MASK}" if colon else value


# --- structures -------------------------------------------------------------------------------------------------


def scrub_obj(value: Any, *, depth: int = 0) -> Any:
    """Decoded JSON with credentials masked: string values under credential keys, ``{name, value}`` env entries,
    Secret objects' data, argv-like lists, and every string through ``scrub_text``."""
    if depth > 64:
        return MASK
    if isinstance(value, str):
        if value[:1] in ("{", "[") and value[-1:] in ("}", "]"):
            return scrub_json(value)  # a JSON document in a string field (a dead letter's payload)
        return scrub_text(value)
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            return scrub_argv(value)
        return [scrub_obj(v, depth=depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("kind") == "Secret" and isinstance(value.get("metadata"), dict):
        value = redact_secret(value)
    # {name: X_PASSWORD, value: ...} (env), {key: password, value: ...}, {op, path: /data/password, value: ...}
    env_name = next((v for k in ("name", "key") if isinstance(v := value.get(k), str)), None)
    if isinstance(value.get("path"), str) and isinstance(value.get("op"), str):
        env_name = value["path"].rsplit("/", 1)[-1]
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(item, str) and isinstance(key, str) and is_secret_key(key) and item not in ("", MASK):
            out[key] = MASK
        elif key == "value" and isinstance(item, str) and isinstance(env_name, str) and is_secret_key(env_name):
            out[key] = MASK if item else item
        else:
            out[key] = scrub_obj(item, depth=depth + 1)
    return out


M = TypeVar("M", bound=BaseModel)


def scrub_model(message: M) -> M:
    """A copy of a pydantic message with ``scrub_obj`` applied to its JSON form (the message itself if unchanged)."""
    data = message.model_dump(mode="json")
    clean = scrub_obj(data)
    if clean == data:
        return message
    try:
        return type(message).model_validate(clean)
    except ValidationError as exc:  # a field whose constraints a mask breaks: keep the shape, drop nothing silently
        log.warning("scrub: %s kept its shape unscrubbed (%d fields)", type(message).__name__, exc.error_count())
        return message


def scrub_json(payload: str) -> str:
    """A JSON document with ``scrub_obj`` applied (not JSON: ``scrub_text``)."""
    try:
        data = json.loads(payload)
        clean = scrub_obj(data)
        return payload if clean == data else json.dumps(clean)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses: scrub it as text
        return scrub_text(payload)


def redact_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret as the read face shows it: keys kept, every value of data/stringData and the last-applied annotation
    (which holds them too) replaced by ``***``. Other objects are returned unchanged."""
    if obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(out.get(field), dict):
            out[field] = {k: MASK for k in out[field]}
    meta = out.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict) and LAST_APPLIED in meta["annotations"]:
        out["metadata"] = {**meta, "annotations": {**meta["annotations"], LAST_APPLIED: MASK}}
    return out


class ScrubFilter(logging.Filter):
    """Scrubs each log record's message, traceback and stack before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the formatter to report
            return True
        record.msg, record.args = scrub_text(message), None
        if record.exc_info:
            record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return True
