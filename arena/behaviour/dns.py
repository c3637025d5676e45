"""Cluster DNS as a pod sees it: its resolv.conf (from ``dnsPolicy``/``dnsConfig``) and CoreDNS's Corefile.

Why it is shaped this way: a name resolves only if every link holds, as on a cluster. The pod's first nameserver
must be the cluster DNS (``ClusterFirst``; ``Default`` and ``ClusterFirst`` with ``hostNetwork`` use the node's
resolver, ``None`` uses ``dnsConfig.nameservers`` only); a short name becomes a Service name only through a search
domain (``ClusterFirst`` adds ``<ns>.svc.cluster.local``, ``svc.cluster.local``, ``cluster.local``); and CoreDNS answers
from its Corefile (ConfigMap ``kube-system/coredns``, reloaded on change like the ``reload`` plugin), where a
``template`` block with ``rcode NXDOMAIN`` shadows the names of its zones before the ``kubernetes`` plugin sees them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from arena.hooks import ClusterView, Obj

CLUSTER_DNS_IP = "10.96.0.10"
NODE_RESOLVER = "172.18.0.1"
"""The node's resolver (a kind node's Docker network gateway), used by ``dnsPolicy: Default``."""
COREDNS_NAMESPACE, COREDNS_CONFIGMAP = "kube-system", "coredns"
DEFAULT_COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""

_TEMPLATE = re.compile(r"template\s+\S+\s+\S+((?:\s+[^\s{]+)*)\s*\{([^}]*)\}", re.S)


@dataclass(frozen=True)
class Resolv:
    nameservers: list[str]
    searches: list[str]


def resolv_conf(pod: Obj | None, namespace: str = "default") -> Resolv:
    """The resolv.conf the kubelet writes for ``pod`` (None: a ClusterFirst client pod in ``namespace``)."""
    spec = (pod or {}).get("spec") or {}
    ns = str(((pod or {}).get("metadata") or {}).get("namespace") or namespace)
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    cfg = spec.get("dnsConfig") or {}
    extra_ns = [str(x) for x in cfg.get("nameservers") or []]
    extra_search = [str(x) for x in cfg.get("searches") or []]
    if policy == "None":
        return Resolv(extra_ns, extra_search)
    cluster = ["svc.cluster.local", "cluster.local"]
    if policy == "Default" or (policy == "ClusterFirst" and spec.get("hostNetwork")):
        return Resolv([NODE_RESOLVER, *extra_ns], extra_search)
    return Resolv([CLUSTER_DNS_IP, *extra_ns], [f"{ns}.svc.cluster.local", *cluster, *extra_search])


def nxdomain_zones(view: ClusterView) -> list[str]:
    """Zones a Corefile ``template`` answers NXDOMAIN for."""
    cm = view.get("ConfigMap", COREDNS_NAMESPACE, COREDNS_CONFIGMAP)
    corefile = str(((cm or {}).get("data") or {}).get("Corefile") or "")
    zones: list[str] = []
    for m in _TEMPLATE.finditer(corefile):
        if re.search(r"\brcode\s+NXDOMAIN\b", m.group(2)):
            zones += [z.rstrip(".").lower() for z in m.group(1).split()]
    return zones


def candidates(host: str, resolv: Resolv) -> list[str]:
    """The names the resolver asks for, in order (ndots 5: a name with fewer dots tries the search list first)."""
    host = host.rstrip(".")
    searched = [f"{host}.{d.rstrip('.')}" for d in resolv.searches]
    return [*searched, host] if host.count(".") < 5 else [host, *searched]


def resolve(view: ClusterView, src: Obj | None, host: str, namespace: str) -> tuple[str | None, str]:
    """(the fully qualified Service name ``name.ns.svc.cluster.local`` it resolves to, or None; the error text)."""
    resolv = resolv_conf(src, namespace)
    if not resolv.nameservers:
        return None, f"lookup {host}: no DNS servers configured"
    server = resolv.nameservers[0]
    if server != CLUSTER_DNS_IP:
        return None, f"lookup {host} on {server}:53: no such host"
    blocked = nxdomain_zones(view)
    for name in candidates(host, resolv):
        low = name.lower()
        if any(low == z or low.endswith("." + z) for z in blocked):
            continue
        parts = low.split(".")
        is_service = len(parts) == 5 and parts[2:] == ["svc", "cluster", "local"]
        if is_service and view.get("Service", parts[1], parts[0]) is not None:
            return low, ""
    return None, f"lookup {host} on {server}:53: no such host"
