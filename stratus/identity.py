"""Identity validation: kinds, names and namespaces are checked against Kubernetes' own rules before any use.

Why it is shaped this way: a name is a *path segment* of the request that acts on the object. A name the API server
would never accept (``web#``, ``../../namespaces/victim``, ``db%2Fx``, a Cyrillic look-alike of ``e``) can still change
which URL a client sends: ``#`` starts a fragment (dropping ``?dryRun=All``), dot segments are normalised away, ``%2F``
is decoded into another path. Confinement, the lease check and the ready-capacity rule then examine one object while the
server acts on another. So identity is validated where an action is built (``stratus.actions``) and again where a path
is built (``stratus.writerequest``), with the same rules the API server applies when the object is created:

- DNS-1123 *label* (``[a-z0-9]([-a-z0-9]*[a-z0-9])?``, at most 63) for namespaces, and for container names;
- DNS-1035 label (a letter first) for Services: their name becomes a DNS name and an environment variable prefix;
- DNS-1123 *subdomain* (labels joined by dots, at most 253) for every other kind Stratus acts on.

Only ASCII is accepted: every rule above is ASCII, and look-alike letters from other scripts are how one name is made
to read as another. Each refusal says which value broke which rule, and what a valid value looks like.
"""

from __future__ import annotations

import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(_LABEL, re.ASCII)
DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?", re.ASCII)
ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*", re.ASCII)
KIND_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:\.[a-z0-9][-a-z0-9.]*)?", re.ASCII)

LABEL_KINDS = frozenset({"Namespace"})
"""Kinds whose names are DNS-1123 labels."""
DNS1035_KINDS = frozenset({"Service"})
"""Kinds whose names are DNS-1035 labels."""


class InvalidIdentity(ValueError):
    """A kind, name or namespace that Kubernetes would not accept; ``str()`` says which rule and why."""


def _show(value: str) -> str:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return ascii(shown)


def _non_ascii(value: str) -> str:
    bad = next(c for c in value if ord(c) > 127)
    return f"U+{ord(bad):04X} {bad!a}"


def check_dns1123_label(value: str, what: str) -> str:
    """``value`` if it is a DNS-1123 label, else ``InvalidIdentity``."""
    _check(value, what, DNS1123_LABEL, DNS1123_LABEL_MAX, "a DNS-1123 label", "lower-case letters, digits and '-'")
    return value


def check_dns1035_label(value: str, what: str) -> str:
    _check(
        value,
        what,
        DNS1035_LABEL,
        DNS1123_LABEL_MAX,
        "a DNS-1035 label",
        "lower-case letters, digits and '-', starting with a letter",
    )
    return value


def check_dns1123_subdomain(value: str, what: str) -> str:
    _check(
        value,
        what,
        DNS1123_SUBDOMAIN,
        DNS1123_SUBDOMAIN_MAX,
        "a DNS-1123 subdomain",
        "lower-case letters, digits, '-' and '.'",
    )
    return value


def _check(value: object, what: str, pattern: re.Pattern[str], limit: int, rule: str, alphabet: str) -> None:
    if not isinstance(value, str):
        raise InvalidIdentity(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidIdentity(f"{what} is empty; Kubernetes requires {rule}")
    why = ""
    if not value.isascii():
        why = f"it contains the non-ASCII character {_non_ascii(value)}"
    elif len(value) > limit:
        why = f"it is {len(value)} characters long, more than {limit}"
    elif not pattern.fullmatch(value):
        bad = sorted({c for c in value if not (c.isalnum() and (c.islower() or c.isdigit())) and c not in "-."})
        if bad:
            why = f"it contains {', '.join(ascii(c) for c in bad)}"
        else:
            why = "it must start and end with an alphanumeric character" + (
                " and start with a letter" if pattern is DNS1035_LABEL else ""
            )
            if pattern is DNS1123_LABEL and "." in value:
                why = "it contains '.'"
    if why:
        raise InvalidIdentity(
            f"{what} {_show(value)} is not {rule} ({why}): Kubernetes accepts only {alphabet}, "
            f"at most {limit} characters. Use the object's exact name as kubectl get shows it."
        )


def check_name(kind: str, name: str) -> str:
    """Check an object's name with its kind's rule (``kind`` is a canonical Kind)."""
    what = f"{kind} name"
    if kind in LABEL_KINDS:
        return check_dns1123_label(name, what)
    if kind in DNS1035_KINDS:
        return check_dns1035_label(name, what)
    return check_dns1123_subdomain(name, what)


def check_namespace(namespace: str) -> str:
    return check_dns1123_label(namespace, "namespace")


def check_container(name: str) -> str:
    return check_dns1123_label(name, "container name")


def check_env_name(name: str) -> str:
    if not isinstance(name, str) or not name.isascii() or not ENV_VAR_NAME.fullmatch(name) or len(name) > 4096:
        raise InvalidIdentity(
            f"environment variable name {_show(str(name))} is not valid: Kubernetes accepts letters, digits, "
            "'-', '.' and '_', not starting with a digit."
        )
    return name


def check_kind_token(token: str) -> str:
    """A kind as typed (``deploy``, ``deployments.apps``): ASCII letters, digits and a dotted group."""
    if not isinstance(token, str) or not token.isascii() or not KIND_NAME.fullmatch(token) or len(token) > 253:
        raise InvalidIdentity(
            f"resource type {_show(str(token))} is not a resource type name: use a kind such as deployment, "
            "pod or service (ASCII letters only)."
        )
    return token


def check_identity(kind: str, namespace: str | None, name: str | None) -> None:
    """Check a canonical kind's object identity: its namespace and name, where given."""
    if namespace is not None:
        check_namespace(namespace)
    if name is not None:
        check_name(kind, name)
