"""Confinement: what an agent may never ask the cluster for, checked in code before anything is parsed or sent.

Why it is shaped this way: an agent's command line is never handed to a shell, so a pipe or ``$(...)`` would not
even run. The rules still refuse them *explicitly*, because an agent that believes it can compose commands, stream
output, open an editor or wait on a watch will plan around a capability it does not have. A refusal is therefore an
answer meant for the agent: what was refused, why, and what to do instead, in the style of the STRATUS paper
("Interactive flag detected: -it. Such commands are not supported.").

Two layers, both applied to every agent:

- ``confine_command`` checks a raw ``kubectl`` command line: shell syntax (scanned with quote awareness, so a
  ``;`` inside a quoted JSON patch is data, not a separator), forbidden sub-commands and flags, namespace deletion,
  selectors on writes. It returns the shlex tokens.
- ``confine_action`` checks a typed action, however it was produced (parsed line or LLM tool call): read-only roles
  cannot write, namespaces are never deleted, bounds on bodies (``stratus.bounds``). An exec is a data-plane
  catalogue operation by construction (``stratus.dataplane``): there is no free argv to confine.
"""

from __future__ import annotations

import re
import shlex
from typing import Literal

from stratus.actions import Action, Delete
from stratus.errors import PermanentError

Role = Literal["read", "write"]
"""A read-only agent (detector, diagnoser) or a writer holding a lease (mitigator, undoer)."""

RefusalRule = Literal[
    "identity",
    "bounds",
    "dataplane",
    "empty",
    "syntax",
    "not_kubectl",
    "pipe",
    "chaining",
    "background",
    "substitution",
    "redirect",
    "flow_control",
    "interactive",
    "forbidden_command",
    "identity_flag",
    "stdin_manifest",
    "follow",
    "watch",
    "namespace_deletion",
    "selector_write",
    "read_only",
    "no_undo",
    "lease_scope",
    "risk_window",
    "ready_capacity",
    "write_policy",
    "unsupported",
]


class Refusal(PermanentError):
    """An action the rules forbid. ``str(refusal)`` is the message for the agent."""

    def __init__(self, message: str, rule: RefusalRule = "unsupported") -> None:
        super().__init__(message)
        self.rule: RefusalRule = rule


ONE_CALL = "Run one kubectl command per call; each call returns its full output to you."

FORBIDDEN_COMMANDS: dict[str, tuple[str, str]] = {
    "edit": ("Interactive command", "Use kubectl patch, set image/env, scale or apply -f FILE instead."),
    "debug": ("Interactive command", "Read the pod with kubectl describe and kubectl logs instead."),
    "attach": ("Interactive command", "Read the container's output with kubectl logs POD --tail=N instead."),
    "port-forward": ("Long-running command", "Inspect the Service and its endpoints with kubectl get/describe."),
    "proxy": ("Long-running command", "Use kubectl get/describe; the gateway already talks to the API for you."),
    "cp": ("File copy", "Read a file with kubectl exec POD -- cat FILE; put configuration in a ConfigMap."),
}
"""Sub-commands that are interactive, long-running or copy data, with what to do instead."""

FLOW_KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac"})
FLOW_KEYWORDS |= {"function", "select", "{", "}", "[[", "]]"}
_FUNCTION_DEF = re.compile(r"^\s*[A-Za-z_][\w-]*\s*\(\s*\)")

IDENTITY_FLAGS = ("--kubeconfig", "--context", "--cluster", "--user", "--server", "-s", "--token", "--as", "--as-group")
INTERACTIVE_ALWAYS = ("-it", "-ti", "--stdin", "--tty")
INTERACTIVE_SHORT_ON = frozenset({"exec", "run", "attach"})
WRITE_COMMANDS = frozenset(
    {"delete", "scale", "patch", "set", "rollout", "apply", "create", "replace", "cordon", "uncordon", "label"}
)
WRITE_COMMANDS |= {"annotate", "taint", "drain", "exec", "autoscale", "expose", "run"}
_SHELL_BLANKS = " \t\n\r\f\v"
"""The characters that separate words on a command line (POSIX blank and newline; shlex's whitespace)."""
_GLOBAL_VALUE_FLAGS = frozenset({"-n", "--namespace", "-o", "--output", "-l", "--selector", *IDENTITY_FLAGS})


def _refuse(detected: str, what: str, why: str, instead: str, rule: RefusalRule) -> Refusal:
    message = f"{detected} detected: {what}. Such commands are not supported"
    message += f": {why}. {instead}" if why else f". {instead}"
    return Refusal(message, rule=rule)


def _scan_shell(line: str) -> None:
    """Refuse shell syntax outside single quotes (double quotes still expand ``$(...)`` and backticks in a shell)."""
    quote: str | None = None
    i = 0
    while i < len(line):
        c = line[i]
        nxt = line[i + 1] if i + 1 < len(line) else ""
        if quote == "'":
            if c == "'":
                quote = None
        elif c == "\\" and quote is None:
            i += 1
        elif c == "$" and nxt == "(":
            raise _refuse(
                "Command substitution",
                "$(...)",
                "",
                "Run the inner command in its own call first and use its output in the next one.",
                "substitution",
            )
        elif c == "`":
            raise _refuse(
                "Command substitution",
                "`...`",
                "",
                "Run the inner command in its own call first and use its output in the next one.",
                "substitution",
            )
        elif quote == '"':
            if c == '"':
                quote = None
        elif c in "'\"":
            quote = c
        elif (c == "|" and nxt == "|") or (c == "&" and nxt == "&"):
            raise _refuse("Command chaining", c + nxt, "", ONE_CALL, "chaining")
        elif c == "|":
            raise _refuse(
                "Pipe",
                "|",
                "",
                "Filter with -l SELECTOR, --field-selector, --tail=N or -o yaml, and read the output yourself.",
                "pipe",
            )
        elif c in ";\n":
            raise _refuse("Command chaining", "newline" if c == "\n" else ";", "", ONE_CALL, "chaining")
        elif c == "&":
            raise _refuse("Background operator", "&", "a tool call must return its result", ONE_CALL, "background")
        elif c in "<>":
            what = line[i : i + 2] if nxt in "<>&" and nxt else c
            raise _refuse(
                "Redirection",
                what,
                "",
                "The output is returned to you directly; to apply a manifest from a file use -f FILE, "
                "or send the apply action with the manifest.",
                "redirect",
            )
        i += 1


def find_subcommand(tokens: list[str]) -> tuple[int, str]:
    """Index and name of the kubectl sub-command (the first positional token after ``kubectl``)."""
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        if tok in _GLOBAL_VALUE_FLAGS:
            i += 2
            continue
        if tok.startswith("-"):
            i += 1
            continue
        return i, tok
    return -1, ""


def _flag_value(tokens: list[str], names: tuple[str, ...]) -> str | None:
    for i, tok in enumerate(tokens):
        for name in names:
            if tok == name and i + 1 < len(tokens):
                return tokens[i + 1]
            if tok.startswith(name + "="):
                return tok.split("=", 1)[1]
    return None


def _has_flag(tokens: list[str], names: tuple[str, ...]) -> str | None:
    for tok in tokens:
        head, _, value = tok.partition("=")
        if head in names and value.lower() not in ("false", "0"):
            return tok
    return None


def confine_command(line: str, role: Role = "read") -> list[str]:
    """Apply every command-line rule to ``line``; return its tokens (``kubectl`` first) or raise ``Refusal``."""
    del role  # writes are refused on the typed action, once the verb is known (confine_action)
    from stratus.bounds import check_command_line

    check_command_line(line)
    # Only the whitespace a shell (and shlex) separates words with: str.strip() would also drop U+00A0 and other
    # Unicode spaces, which shlex keeps inside a word, so "-n scope\u00a0" would name a namespace it does not.
    stripped = line.strip(_SHELL_BLANKS)
    if not stripped:
        raise Refusal(
            "Empty command refused: give one kubectl command, e.g. kubectl get pods -n NAMESPACE.", rule="empty"
        )
    first = stripped.split(None, 1)[0]
    if first in FLOW_KEYWORDS or _FUNCTION_DEF.match(stripped):
        raise _refuse("Shell flow control", first, "", ONE_CALL + " Repeat the call for each object.", "flow_control")
    _scan_shell(stripped)
    try:
        tokens = shlex.split(stripped)
    except ValueError as exc:
        raise Refusal(f"Command refused: it could not be parsed ({exc}). Check the quoting.", rule="syntax") from exc
    if tokens[0] != "kubectl":
        raise Refusal(
            f"Command refused: {tokens[0]!r} is not kubectl. Only kubectl commands are supported, one per call.",
            rule="not_kubectl",
        )
    try:
        dashdash = tokens.index("--")
    except ValueError:
        dashdash = len(tokens)
    head = tokens[:dashdash]
    idx, sub = find_subcommand(head)
    if sub in FORBIDDEN_COMMANDS:
        label, instead = FORBIDDEN_COMMANDS[sub]
        raise _refuse(label, f"kubectl {sub}", "", instead, "forbidden_command")
    identity = _has_flag(head, IDENTITY_FLAGS)
    if identity:
        raise _refuse(
            "Identity flag",
            identity.partition("=")[0],
            "the gateway acts with its own credentials on its own cluster",
            "Drop the flag.",
            "identity_flag",
        )
    interactive = _has_flag(head, INTERACTIVE_ALWAYS)
    if interactive is None and sub in INTERACTIVE_SHORT_ON:
        interactive = next((t for t in head if re.fullmatch(r"-[A-Za-z]+", t) and set(t[1:]) & {"i", "t"}), None)
    if interactive:
        raise _refuse(
            "Interactive flag",
            interactive.partition("=")[0],
            "",
            "Run a non-interactive command instead, e.g. kubectl exec POD -- CMD ARGS.",
            "interactive",
        )
    if _flag_value(head, ("-f", "--filename")) == "-" and sub != "logs":
        raise _refuse(
            "Reading from stdin",
            "-f -",
            "there is no stdin",
            "Write the manifest to a file and pass -f FILE, or send the apply action with the manifest.",
            "stdin_manifest",
        )
    if sub == "logs":
        follow = _has_flag(head, ("-f", "--follow"))
        if follow:
            raise _refuse(
                "Streaming flag",
                follow.partition("=")[0],
                "a tool call must return",
                "Use kubectl logs POD --tail=N, and call again later for newer lines.",
                "follow",
            )
    if sub in ("get", "events", "rollout", "describe"):
        watch = _has_flag(head, ("-w", "--watch", "--watch-only"))
        if watch:
            raise _refuse(
                "Watch flag",
                watch.partition("=")[0],
                "a tool call must return",
                "Run kubectl get again later to see what changed.",
                "watch",
            )
    if sub == "delete":
        rest = [t for t in head[idx + 1 :] if not t.startswith("-")]
        types = rest[0].split("/", 1)[0].split(",") if rest else []
        if any(t.lower().split(".")[0] in ("ns", "namespace", "namespaces") for t in types):
            raise _namespace_deletion(" ".join(["delete", *rest]))
    if sub in WRITE_COMMANDS:
        selector = _has_flag(head, ("-l", "--selector", "--all", "--all-namespaces", "-A"))
        if selector and selector.partition("=")[0] in ("-l", "--selector"):
            selector = f"{selector} {_flag_value(head, ('-l', '--selector'))}" if "=" not in selector else selector
        if selector:
            raise _refuse(
                "Selector in a write",
                selector,
                "every write needs the pre-image of each object it changes, recorded before it runs",
                "Name each object explicitly; list them first with kubectl get KIND -l SELECTOR.",
                "selector_write",
            )
    return tokens


def _namespace_deletion(what: str) -> Refusal:
    return _refuse(
        "Namespace deletion",
        what,
        "deleting a namespace destroys every object in it and cannot be undone",
        "Delete or fix the individual objects instead.",
        "namespace_deletion",
    )


def confine_action(action: Action, role: Role) -> None:
    """Apply the action-level rules to a typed action, however it was produced; raise ``Refusal``."""
    if action.is_write and role != "write":
        raise Refusal(
            f"Write operation '{action.verb}' refused: this agent has a read-only role. "
            "Report the change you recommend instead; only the mitigator writes, under a lease.",
            rule="read_only",
        )
    if isinstance(action, Delete) and action.kind == "Namespace":
        raise _namespace_deletion(f"delete namespace {action.name}")
    from stratus.bounds import check_action_bounds

    check_action_bounds(action)
