"""Bounded inputs: every body, file and command line an agent hands the gateway has a size, depth and shape limit.

Why it is shaped this way: the gateway runs inside long-lived services, and its inputs come from a model that may be
confused or hostile. ``kubectl apply -f /dev/zero`` reads forever; a 335-byte YAML document whose aliases refer to
aliases expands to billions of nodes when it is *constructed*; a JSON patch nested ten thousand levels deep exhausts the
recursion limit of whoever walks it next. So the limits are applied before anything is materialised:

- files: only regular files, never under ``/dev``, ``/proc`` or ``/sys`` (after resolving links), never a URL, and read
  up to the size cap plus one byte, so an endless or growing file cannot be read past the cap;
- YAML: composed with a loader that refuses anchors and aliases (Kubernetes manifests never need them) and counts depth
  and nodes while composing, before a single object is constructed; it constructs JSON values only (a Kubernetes object
  is JSON): ``!!binary``, ``!!set``, ``!!omap``, ``!!pairs``, NaN and infinities are refused, and an unquoted date
  stays the string it was written as;
- JSON-like values (patches and manifests of typed tool calls): depth, node count and encoded size are checked by an
  iterative walk (no recursion to exhaust);
- command lines: total length and argument count.

Every refusal says what was refused, which limit it broke, and what to do instead (``Refusal`` with rule ``bounds``).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from stratus.confinement import Refusal

MAX_BODY_BYTES = 512 * 1024
"""Manifests, patch bodies and files: at most this many bytes (the API server's own request limit is 3 MiB)."""
MAX_DEPTH = 64
"""Nesting depth of a JSON or YAML value."""
MAX_NODES = 20_000
"""Scalars, mappings and sequences in one JSON or YAML value."""
MAX_COMMAND_CHARS = 16 * 1024
"""Characters in one kubectl command line."""
MAX_ARGS = 256
"""Arguments in one command line or exec argv."""
MAX_ARG_CHARS = 8 * 1024
"""Characters in one exec argument."""
FORBIDDEN_ROOTS = ("/dev", "/proc", "/sys")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _refuse(what: str, why: str, instead: str) -> Refusal:
    return Refusal(f"{what} refused: {why}. {instead}", rule="bounds")


def check_command_line(line: str) -> None:
    if len(line) > MAX_COMMAND_CHARS:
        raise _refuse(
            "Command line",
            f"it is {len(line)} characters long, more than the limit of {MAX_COMMAND_CHARS}",
            "Put a large patch or manifest in a file and pass -f FILE, or send the typed action.",
        )


def check_argv(argv: list[str], what: str = "Command") -> None:
    if len(argv) > MAX_ARGS:
        raise _refuse(what, f"it has {len(argv)} arguments, more than {MAX_ARGS}", "Send fewer arguments.")
    for arg in argv:
        if len(arg) > MAX_ARG_CHARS:
            raise _refuse(what, f"one argument is {len(arg)} characters long, more than {MAX_ARG_CHARS}", "Shorten it.")
        if "\x00" in arg:
            raise _refuse(what, "an argument contains a NUL byte", "Remove it.")


def check_value(value: Any, what: str) -> None:
    """Depth, node count and encoded size of a JSON-like value (an iterative walk: no recursion)."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise _refuse(
                what,
                f"it has more than {MAX_NODES} values",
                "Send a smaller object; patch only the fields that change.",
            )
        if depth > MAX_DEPTH:
            raise _refuse(
                what,
                f"it is nested more than {MAX_DEPTH} levels deep",
                "Kubernetes objects are far shallower; send the object itself.",
            )
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
            nodes += len(item)  # the keys
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)
    size = len(json.dumps(value, separators=(",", ":"), default=str))
    if size > MAX_BODY_BYTES:
        raise _refuse(what, f"it is {size} bytes encoded, more than {MAX_BODY_BYTES}", "Send a smaller object.")


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors/aliases and bounds depth and node count while composing."""

    def __init__(self, stream: str, what: str) -> None:
        super().__init__(stream)
        self._what = what
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _refuse(
                self._what,
                "it uses YAML anchors or aliases (&name / *name), which can expand without bound",
                "Write every value out in full.",
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _refuse(self._what, f"it has more than {MAX_NODES} YAML nodes", "Send a smaller document.")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _refuse(
                    self._what, f"it is nested more than {MAX_DEPTH} levels deep", "Send a shallower document."
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _not_json(loader: _BoundedLoader, node: yaml.Node) -> Any:
    tag = str(node.tag).rpartition(":")[2]
    raise _refuse(
        loader._what,
        f"it uses the YAML type !!{tag} (line {node.start_mark.line + 1}), which has no JSON form; a Kubernetes "
        "object is JSON, and the API server would receive something other than what the document shows",
        "Write the value as a plain string, number, list or mapping (quote it if it looks like a date).",
    )


def _scalar_text(loader: _BoundedLoader, node: yaml.Node) -> Any:
    # An unquoted date is a string in a Kubernetes object (every such field is a string): keep it as written,
    # rather than as a Python datetime that no JSON encoder sends.
    return loader.construct_scalar(node)  # type: ignore[arg-type]


def _finite_float(loader: _BoundedLoader, node: yaml.Node) -> Any:
    value = loader.construct_yaml_float(node)  # type: ignore[arg-type]
    if value != value or value in (float("inf"), float("-inf")):
        raise _refuse(
            loader._what,
            f"it holds the number {loader.construct_scalar(node)!r} (line {node.start_mark.line + 1}), which JSON "  # type: ignore[arg-type]
            "cannot carry (NaN and infinities are not JSON numbers)",
            "Use a finite number.",
        )
    return value


for _tag in ("binary", "omap", "pairs", "set"):
    _BoundedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _not_json)
_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _scalar_text)
_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _finite_float)


def _check_text(text: str, what: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise _refuse(what, f"it is {size} bytes, more than the limit of {MAX_BODY_BYTES}", "Send a smaller document.")


def load_yaml(text: str, what: str) -> Any:
    """One JSON or YAML document, bounded; raises ``Refusal`` (rule ``bounds``) or ``yaml.YAMLError``."""
    _check_text(text, what)
    loader = _BoundedLoader(text, what)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml_all(text: str, what: str) -> list[Any]:
    """Every document of a YAML stream, bounded."""
    _check_text(text, what)
    loader = _BoundedLoader(text, what)
    docs: list[Any] = []
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            docs.append(loader.get_data())
    finally:
        loader.dispose()
    return docs


def read_file(name: str, workdir: Path | None, what: str = "Manifest file") -> str:
    """Read an agent-named file: a regular file, not under /dev, /proc or /sys, not a URL, at most the size cap."""
    if _URL.match(name):
        raise _refuse(f"{what} {name}", "it is a URL, and the gateway reads no URLs", "Write the content to a file.")
    path = Path(name)
    if not path.is_absolute() and workdir is not None:
        path = workdir / path
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError) as exc:
        raise Refusal(f"Cannot read {what.lower()} {name}: {exc}.", rule="syntax") from exc
    for root in FORBIDDEN_ROOTS:
        if real == root or real.startswith(root + "/") or str(path) == root or str(path).startswith(root + "/"):
            raise _refuse(
                f"{what} {name}",
                f"it is under {root}, which holds devices and kernel state, not manifests",
                "Write the manifest to an ordinary file.",
            )
    if workdir is not None:
        root = os.path.realpath(workdir)
        if not real.startswith(root.rstrip("/") + "/"):
            raise _refuse(
                f"{what} {name}",
                f"it is outside the working directory {root}, and the gateway reads no other files",
                "Write the manifest into the working directory.",
            )
    try:
        info = os.stat(real)
    except OSError as exc:
        raise Refusal(f"Cannot read {what.lower()} {name}: {exc.strerror or exc}.", rule="syntax") from exc
    if stat.S_ISDIR(info.st_mode):
        raise Refusal(f"{name} is a directory; give one manifest file per -f.", rule="unsupported")
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(f"{what} {name}", "it is not a regular file", "Write the manifest to an ordinary file.")
    if info.st_size > MAX_BODY_BYTES:
        raise _refuse(
            f"{what} {name}",
            f"it is {info.st_size} bytes, more than the limit of {MAX_BODY_BYTES}",
            "Split it, or apply only the objects that change.",
        )
    try:
        with open(real, "rb") as fh:
            data = fh.read(MAX_BODY_BYTES + 1)
    except OSError as exc:
        raise Refusal(f"Cannot read {what.lower()} {name}: {exc.strerror or exc}.", rule="syntax") from exc
    if len(data) > MAX_BODY_BYTES:
        raise _refuse(f"{what} {name}", f"it holds more than {MAX_BODY_BYTES} bytes", "Send a smaller file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(f"{what} {name}", "it is not UTF-8 text", "Manifests are YAML or JSON text.") from exc


def check_action_bounds(action: Any) -> None:
    """The bounds of a typed action's free-form parts: patch bodies, manifests, exec argv."""
    fields = vars(action)  # the model's fields: a getattr of a field the verb lacks is slow on a pydantic model
    for field in ("patch", "manifest", "args"):
        value = fields.get(field)
        if value is not None:
            check_value(value, f"The {field} of {action.verb} on {action.target}")
