"""A small generic Kubernetes client over the official client's transport: any kind by name, the three patch types,
``exec`` through the websocket channel protocol. The scenario engine and ``arena up`` use it against the arena exactly
as they would against a cluster."""

from __future__ import annotations

import builtins
import json
import time
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import stream

Obj = dict[str, Any]

# kind -> (API prefix, plural, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Node": ("/api/v1", "nodes", False),
    "PersistentVolume": ("/api/v1", "persistentvolumes", False),
    "Pod": ("/api/v1", "pods", True),
    "Service": ("/api/v1", "services", True),
    "Endpoints": ("/api/v1", "endpoints", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Secret": ("/api/v1", "secrets", True),
    "ResourceQuota": ("/api/v1", "resourcequotas", True),
    "LimitRange": ("/api/v1", "limitranges", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "Event": ("/api/v1", "events", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "Job": ("/apis/batch/v1", "jobs", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "CronJob": ("/apis/batch/v1", "cronjobs", True),
    "StorageClass": ("/apis/storage.k8s.io/v1", "storageclasses", False),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "MutatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", False),
    "ValidatingWebhookConfiguration": (
        "/apis/admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        False,
    ),
}
PATCH_CONTENT = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}


class KubeError(Exception):
    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status, self.reason, self.message = status, reason, message


class Kube:
    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api
        self.core = k8s.CoreV1Api(api)

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> Kube:
        cfg = k8s.Configuration()
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=cfg
        )
        return cls(k8s.ApiClient(cfg))

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    @staticmethod
    def path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        try:
            prefix, plural, namespaced = KINDS[kind]
        except KeyError:
            raise KubeError(400, f"kind {kind!r} is not known to the scenario client: {sorted(KINDS)}") from None
        p = prefix + (f"/namespaces/{namespace}" if namespaced and namespace else "") + f"/{plural}"
        if name:
            p += f"/{name}"
        if sub:
            p += f"/{sub}"
        return p

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: builtins.list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        m, url, hdrs, payload, _ = self.api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        resp = self.api.call_api(m, url, header_params=hdrs, body=payload)
        resp.read()  # type: ignore[no-untyped-call]
        raw = resp.data.decode() if isinstance(resp.data, bytes) else str(resp.data or "")
        try:
            data = json.loads(raw) if raw.strip().startswith(("{", "[")) else raw
        except json.JSONDecodeError:
            data = raw  # plain text (pod logs) that happens to start with a bracket
        if resp.status >= 400:
            msg = data.get("message", raw) if isinstance(data, dict) else raw
            reason = data.get("reason", "") if isinstance(data, dict) else ""
            raise KubeError(resp.status, str(msg), str(reason))
        return data

    # -- verbs ---------------------------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        try:
            return dict(self.request("GET", self.path(kind, namespace, name)))
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items()))] if labels else []
        data = self.request("GET", self.path(kind, namespace), query=query)
        items: builtins.list[Obj] = data.get("items") or []
        return items

    def create(self, obj: Obj) -> Obj:
        ns = (obj.get("metadata") or {}).get("namespace")
        return dict(self.request("POST", self.path(obj["kind"], ns), body=obj))

    def replace(self, obj: Obj) -> Obj:
        m = obj.get("metadata") or {}
        return dict(self.request("PUT", self.path(obj["kind"], m.get("namespace"), m["name"]), body=obj))

    def patch(self, kind: str, namespace: str | None, name: str, patch: Any, patch_type: str = "strategic") -> Obj:
        return dict(
            self.request("PATCH", self.path(kind, namespace, name), body=patch, content_type=PATCH_CONTENT[patch_type])
        )

    def delete(self, kind: str, namespace: str | None, name: str, ignore_missing: bool = True) -> None:
        try:
            self.request("DELETE", self.path(kind, namespace, name), body={"propagationPolicy": "Background"})
        except KubeError as e:
            if not (e.status == 404 and ignore_missing):
                raise

    def apply(self, obj: Obj) -> Obj:
        """Create, or merge the manifest into the existing object (close to kubectl apply for our manifests)."""
        try:
            return self.create(obj)
        except KubeError as e:
            if e.status != 409:
                raise
        m = obj["metadata"]
        return self.patch(obj["kind"], m.get("namespace"), m["name"], obj, "merge")

    def logs(self, namespace: str, pod: str, container: str | None = None, previous: bool = False) -> str:
        query = [("container", container)] if container else []
        if previous:
            query.append(("previous", "true"))
        try:
            data = self.request("GET", self.path("Pod", namespace, pod, "log"), query=query)
        except KubeError as e:
            if e.status in (400, 404):
                return ""
            raise
        return data if isinstance(data, str) else json.dumps(data)

    def exec(
        self, namespace: str, pod: str, command: builtins.list[str], container: str | None = None
    ) -> tuple[str, str, int]:
        kwargs: dict[str, Any] = {"command": command, "stderr": True, "stdout": True, "stdin": False, "tty": False}
        if container:
            kwargs["container"] = container
        ws = stream(self.core.connect_get_namespaced_pod_exec, pod, namespace, _preload_content=False, **kwargs)
        out, err = [], []
        deadline = time.monotonic() + 30
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            if ws.peek_stdout():
                out.append(ws.read_stdout())
            if ws.peek_stderr():
                err.append(ws.read_stderr())
        code = ws.returncode
        ws.close()
        sock = getattr(ws, "sock", None)
        if sock is not None:  # websocket-client skips closing when the server hung up first
            sock.shutdown()
        return "".join(out), "".join(err), int(code) if code is not None else 0
