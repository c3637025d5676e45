"""The arena's object store: every object of every resource, a global resourceVersion, and watches.

Why it is shaped this way:

- Objects are stored as JSON-shaped dicts and are *immutable once stored*: a writer always stores a fresh dict and never
  mutates one it read. Readers (the API serving a list of 50 pods, the controllers, the behaviour) can then use stored
  objects without copying, which keeps list/get in the sub-millisecond range. Code that wants to change an object
  deep-copies it first (``copy_of``).
- One global, monotonically increasing resourceVersion, as etcd's revision: a list's resourceVersion is the store's
  current one, and a watch started from it misses nothing, because every change is also kept in a bounded history.
  A watch from a version older than the history answers 410 Gone, as the real apiserver does.
- The store is normally driven from the arena's event loop, but in-process code on other threads (tests, fault
  injection) may read and write it too: a lock guards the maps, and watchers are fed through their loop's
  ``call_soon_threadsafe`` when the writer is on another thread.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


def copy_of(obj: Obj) -> Obj:
    return copy.deepcopy(obj)


@dataclass
class Change:
    rv: int
    key: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None


@dataclass(eq=False)
class Watcher:
    key: str
    namespace: str | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)

    def push(self, change: Change | None) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.queue.put_nowait(change)
        else:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, change)


class Store:
    def __init__(self, history: int = 50_000) -> None:
        self._objs: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = 0
        self._lock = threading.RLock()
        self._history: deque[Change] = deque(maxlen=history)
        self._watchers: set[Watcher] = set()
        self.listeners: list[Callable[[Change], None]] = []

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, key: str, namespace: str | None, name: str) -> Obj | None:
        return self._objs.get(key, {}).get((namespace or "", name))

    def list(self, key: str, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            objs = self._objs.get(key)
            if not objs:
                return []
            if namespace:
                return [o for (ns, _), o in objs.items() if ns == namespace]
            return list(objs.values())

    def keys(self) -> Iterable[str]:
        return list(self._objs)

    def put(self, key: str, obj: Obj) -> Obj:
        """Store ``obj`` (created or replaced); it gets the next resourceVersion. The store owns ``obj`` afterwards."""
        meta = obj["metadata"]
        k = (meta.get("namespace") or "", meta["name"])
        with self._lock:
            bucket = self._objs.setdefault(key, {})
            old = bucket.get(k)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            bucket[k] = obj
            change = Change(self._rv, key, "MODIFIED" if old is not None else "ADDED", obj, old)
            self._history.append(change)
        self._notify(change)
        return obj

    def remove(self, key: str, namespace: str | None, name: str) -> Obj | None:
        with self._lock:
            bucket = self._objs.get(key, {})
            old = bucket.pop((namespace or "", name), None)
            if old is None:
                return None
            self._rv += 1
            gone = copy.copy(old)
            gone["metadata"] = dict(old["metadata"], resourceVersion=str(self._rv))
            change = Change(self._rv, key, "DELETED", gone, old)
            self._history.append(change)
        self._notify(change)
        return gone

    def _notify(self, change: Change) -> None:
        for w in list(self._watchers):
            if w.key == change.key and (
                not w.namespace or w.namespace == (change.obj["metadata"].get("namespace") or "")
            ):
                w.push(change)
        for listener in self.listeners:
            listener(change)

    def watch(self, key: str, namespace: str | None, since: int | None) -> tuple[Watcher, builtins.list[Change]]:
        """Register a watcher; returns it with the backlog of changes after ``since`` (None: none).

        Raises ``LookupError`` when ``since`` is older than the kept history.
        """
        loop = asyncio.get_running_loop()
        w = Watcher(key, namespace, loop)
        with self._lock:
            backlog: builtins.list[Change] = []
            if since is not None and since < self._rv:
                if self._history and self._history[0].rv > since + 1 and len(self._history) == self._history.maxlen:
                    raise LookupError(since)
                for c in self._history:
                    if (
                        c.rv > since
                        and c.key == key
                        and (not namespace or namespace == (c.obj["metadata"].get("namespace") or ""))
                    ):
                        backlog.append(c)
            self._watchers.add(w)
        return w, backlog

    def close_watchers(self) -> None:
        """End every watch (server shutdown)."""
        with self._lock:
            watchers = list(self._watchers)
        for w in watchers:
            w.push(None)

    def unwatch(self, w: Watcher) -> None:
        with self._lock:
            self._watchers.discard(w)
