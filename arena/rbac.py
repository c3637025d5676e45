"""RBAC authorisation as kube-apiserver's RBAC authorizer decides it: a request by a ServiceAccount is allowed when a
RoleBinding in the request's namespace (to a Role there or a ClusterRole) or a ClusterRoleBinding (to a ClusterRole)
names the account (or one of its groups) and one of the role's rules matches the verb, API group, resource and, when
given, the object's name. Nothing is allowed by default."""

from __future__ import annotations

from typing import Any, Protocol

Obj = dict[str, Any]


class View(Protocol):
    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None: ...

    def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]: ...


def _subject_matches(subject: Obj, sa_namespace: str, sa_name: str, binding_ns: str | None) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return bool(subject.get("name") == sa_name and ns == sa_namespace)
    if kind == "Group":
        return subject.get("name") in (
            "system:serviceaccounts",
            f"system:serviceaccounts:{sa_namespace}",
            "system:authenticated",
        )
    if kind == "User":
        return bool(subject.get("name") == f"system:serviceaccount:{sa_namespace}:{sa_name}")
    return False


def _rule_matches(rule: Obj, verb: str, group: str, resource: str, name: str | None) -> bool:
    def has(values: Any, want: str) -> bool:
        return any(v in ("*", want) for v in values or [])

    if not (
        has(rule.get("verbs"), verb) and has(rule.get("apiGroups"), group) and has(rule.get("resources"), resource)
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


def _role_rules(view: View, ref: Obj, binding_ns: str | None) -> list[Obj]:
    if ref.get("kind") == "ClusterRole":
        role = view.get("ClusterRole", None, str(ref.get("name")))
    elif ref.get("kind") == "Role" and binding_ns:
        role = view.get("Role", binding_ns, str(ref.get("name")))
    else:
        role = None
    return list((role or {}).get("rules") or [])


def allowed(
    view: View,
    sa_namespace: str,
    sa_name: str,
    verb: str,
    resource: str,
    namespace: str | None,
    group: str = "",
    name: str | None = None,
) -> bool:
    """Whether ServiceAccount ``sa_namespace/sa_name`` may ``verb`` ``resource`` (in ``namespace``)."""
    bindings: list[tuple[Obj, str | None]] = [(b, None) for b in view.list("ClusterRoleBinding")]
    if namespace:
        bindings += [(b, namespace) for b in view.list("RoleBinding", namespace)]
    for binding, ns in bindings:
        if not any(_subject_matches(s, sa_namespace, sa_name, ns) for s in binding.get("subjects") or []):
            continue
        for rule in _role_rules(view, binding.get("roleRef") or {}, ns):
            if _rule_matches(rule, verb, group, resource, name):
                return True
    return False


def forbidden_message(
    sa_namespace: str,
    sa_name: str,
    verb: str,
    resource: str,
    namespace: str | None,
    name: str | None = None,
    group: str = "",
) -> str:
    """The API's 403 message, as client libraries print it."""
    what = f'{resource} "{name}"' if name else resource
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return (
        f'{what} is forbidden: User "system:serviceaccount:{sa_namespace}:{sa_name}" cannot {verb} resource '
        f'"{resource}" in API group "{group}"{where}'
    )
