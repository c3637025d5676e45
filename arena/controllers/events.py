"""Events as the real components record them: same reasons and messages, repeated ones aggregated into ``count``."""

from __future__ import annotations

import copy
import time
from collections import OrderedDict

from arena.objects import now
from arena.resources import BY_KIND
from arena.rest import Rest
from arena.store import Obj

EVENTS = BY_KIND["Event"]


class EventRecorder:
    def __init__(self, rest: Rest, max_events: int = 5000) -> None:
        self.rest = rest
        self.max_events = max_events
        self._last_stamp = 0
        self._last_seen: dict[tuple[str, ...], float] = {}
        self._index: OrderedDict[tuple[str, ...], tuple[str, str]] = OrderedDict()

    def emit(
        self,
        obj: Obj,
        type_: str,
        reason: str,
        message: str,
        component: str,
        host: str | None = None,
        field_path: str | None = None,
        throttle: float = 0.0,
    ) -> None:
        """Record an event; a repeat of the same one within ``throttle`` seconds is dropped (controllers that
        retry every pass use this so that ``count`` grows at a real controller's pace)."""
        meta = obj.get("metadata", {})
        ns = meta.get("namespace") or "default"
        key = (str(meta.get("uid")), type_, reason, message, component, field_path or "")
        ts = now()
        mono = time.monotonic()
        if throttle and mono - self._last_seen.get(key, -1e9) < throttle:
            return
        self._last_seen[key] = mono
        if len(self._last_seen) > 4 * self.max_events:
            self._last_seen.clear()
        if key in self._index:
            ens, ename = self._index[key]
            cur = self.rest.store.get(EVENTS.key, ens, ename)
            if cur is not None:
                ev = copy.deepcopy(cur)
                ev["count"] = int(ev.get("count", 1)) + 1
                ev["lastTimestamp"] = ts
                self.rest.store.put(EVENTS.key, ev)
                self._index.move_to_end(key)
                return
        if self.rest.store.get("namespaces", None, ns) is None:
            return
        involved: Obj = {
            "kind": obj.get("kind"),
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "apiVersion": obj.get("apiVersion"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        if not meta.get("namespace"):
            involved.pop("namespace")
        if field_path:
            involved["fieldPath"] = field_path
        stamp = max(time.time_ns(), self._last_stamp + 1)
        self._last_stamp = stamp
        name = f"{meta.get('name')}.{stamp:x}"
        ev = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        try:
            self.rest.create(EVENTS, ns, ev)
        except Exception:  # a terminating namespace refuses new events, as in a real cluster
            return
        self._index[key] = (ns, name)
        while len(self._index) > self.max_events:
            _, (ons, oname) = self._index.popitem(last=False)
            self.rest.store.remove(EVENTS.key, ons, oname)
