"""Diagnosis by change (``stratus.reasoners.rulebook.changes``) on recorded snapshots stored as data
(``tests/data/changes/<case>/``: ``healthy.yaml`` as the scope was when healthy, ``objects.yaml`` now)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from stratus.actions import Create, Delete, Patch, RolloutRestart
from stratus.contracts import DiagnoseRequest
from stratus.lastgood import CLUSTER_DNS, LastGood, capture
from stratus.reasoners.rulebook import RulebookDiagnosisReasoner, RulebookMitigationReasoner
from stratus.reasoners.rulebook.changes import candidates, change_findings, diff, findings, revert_actions
from stratus.reasoners.rulebook.mitigate import MIN_CONFIDENCE
from stratus.reasoners.rulebook.snapshot import collect
from stratus.writepolicy import WritePolicy
from tests.unit.rulebook_cases.casetools import CaseTools, namespace_lease
from tests.unit.test_rulebook_cases import mitigate_request

DATA = Path(__file__).parent.parent / "data" / "changes"


def healthy(case: str) -> LastGood:
    objects = [o for o in yaml.safe_load_all((DATA / case / "healthy.yaml").read_text()) if o]

    class Lister:
        async def list_objects(self, kind: str, namespace: str | None = None) -> list[dict[str, object]]:
            return [
                o
                for o in objects
                if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") in (None, namespace))
            ]

    return asyncio.run(capture(Lister(), "shop", now=0.0))


def now(case: str) -> tuple[CaseTools, LastGood]:
    tools = CaseTools(DATA / case)
    return tools, asyncio.run(capture(tools, "shop"))


def test_a_template_change_is_cut_into_revertable_units() -> None:
    _, after = now("template-two-units")
    units = {(c.key, c.pointer) for c in diff(healthy("template-two-units"), after)}
    assert units == {
        ("Deployment/shop/web", "/spec/template/metadata/annotations"),
        ("Deployment/shop/web", "/spec/template/spec/nodeName"),
        ("ConfigMap/shop/unrelated", "/data"),
    }


def test_candidates_are_tied_to_the_unhealthy_pod_and_unrelated_changes_are_not() -> None:
    tools, after = now("template-two-units")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, loose = candidates(healthy("template-two-units"), after, snap)
    assert [c.change.pointer for c in tied] == ["/spec/template/metadata/annotations", "/spec/template/spec/nodeName"]
    assert all("owns pod web-2-bbbbb (Pending)" in c.why[0] for c in tied)
    assert [c.key for c in loose] == ["ConfigMap/shop/unrelated"]
    revert = tied[1].actions[0]
    assert isinstance(revert, Patch) and revert.patch == [{"op": "remove", "path": "/spec/template/spec/nodeName"}]


def test_the_mitigation_reverts_one_candidate_per_attempt_and_skips_one_that_was_undone() -> None:
    before = healthy("template-two-units")

    async def source(scope: str) -> LastGood | None:
        return before

    reasoner = RulebookMitigationReasoner(lastgood=source)
    first = CaseTools(DATA / "template-two-units")
    asyncio.run(reasoner.mitigate(mitigate_request("shop"), first))
    assert len(first.executed) == 1
    assert first.executed[0].patch[0]["path"] == "/spec/template/metadata/annotations"  # type: ignore[union-attr]
    # The coordinator's reflection of the aborted attempt names the write and its parameters.
    spec = first.executed[0]
    params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
    reflection = f"Attempt 1 tried: patch Deployment/shop/web ({params}). Aborted and undone: mu did not go down."
    second = CaseTools(DATA / "template-two-units")
    asyncio.run(reasoner.mitigate(mitigate_request("shop", reflections=[reflection]), second))
    assert [a.patch for a in second.executed] == [[{"op": "remove", "path": "/spec/template/spec/nodeName"}]]  # type: ignore[union-attr]


def test_the_diagnosis_says_which_change_it_blames_and_why() -> None:
    before = healthy("template-two-units")

    async def source(scope: str) -> LastGood | None:
        return before

    tools = CaseTools(DATA / "template-two-units")
    diagnosis = asyncio.run(
        RulebookDiagnosisReasoner(lastgood=source).diagnose(DiagnoseRequest(incident_id="i", scope="shop"), tools)
    )
    assert diagnosis.localisation[0] == "web"
    assert "changed since the last healthy state: Deployment/shop/web" in diagnosis.summary
    assert any(e.startswith("blamed because it owns pod web-2-bbbbb") for e in diagnosis.evidence)


def test_a_created_policy_is_deleted_and_a_rotated_secret_is_blamed_but_not_reverted() -> None:
    tools, after = now("policy-created")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, _ = candidates(healthy("policy-created"), after, snap)
    by_key = {c.change.key: c for c in tied}
    policy = by_key["NetworkPolicy/shop/deny-all"]
    assert policy.change.op == "created" and isinstance(policy.actions[0], Delete)
    assert "it selects unhealthy pods" in policy.why[0]
    secret = by_key["Secret/shop/db-creds"]
    assert secret.actions == [] and "reference Secret/db-creds" in secret.why[0]
    assert "bmV3" not in str(secret.change) and "b2xk" not in str(secret.change)  # hashes only


def test_a_deleted_object_is_recreated_from_the_snapshot() -> None:
    _, after = now("policy-created")
    before = healthy("template-two-units")  # as if the web Deployment and its Service had been deleted
    changes = {c.key: c for c in diff(before, after)}
    svc = changes["Service/shop/web"]
    assert svc.op == "deleted"
    (create,) = revert_actions(svc)
    assert isinstance(create, Create)
    assert create.manifest["apiVersion"] == "v1" and create.manifest["spec"]["selector"] == {"app": "web"}
    assert "clusterIP" not in create.manifest["spec"]


def test_localisation_weighs_the_traces_and_the_changes_together() -> None:
    from stratus.reasoners.bootstrap import CallGraph, Hypothesis
    from stratus.reasoners.rulebook.analyzers import Finding
    from stratus.reasoners.rulebook.diagnose import rank
    from stratus.reasoners.rulebook.mitigate import choose_plans
    from stratus.reasoners.rulebook.snapshot import Snapshot

    def change(component: str, rank_: int) -> Finding:
        revert = [{"verb": "rollout_restart", "kind": "Deployment", "namespace": "shop", "name": component}]
        return Finding(
            analyzer="changes",
            mechanism="recent_change",
            component=component,
            target=f"Deployment/shop/{component}",
            confidence=0.75 - 0.01 * rank_,
            evidence=[f"changed: {component}"],
            facts={"revert": revert, "pointer": "/spec/template/spec/x", "op": "changed", "rank": rank_},
        )

    found = [change("cart", 0), change("web", 1)]
    graph = CallGraph(hypotheses=[Hypothesis(service="web", operation="GET /", traces=9, depth=2)])
    order = rank(Snapshot(namespace="shop"), found, graph)
    assert order[:2] == ["web", "cart"]  # the traces say failures start at web: its change ranks first
    plans = choose_plans(found, "shop", [], first=order[0])
    assert [p.finding.component for p in plans] == ["web"]


def test_history_beats_inference_once_then_the_analyzer_fix_runs() -> None:
    case = Path(__file__).parent.parent / "data" / "relations" / "selector-value-changed"
    tools = CaseTools(case)
    objects = [dict(o) for o in tools.objects]
    for o in objects:
        if o["kind"] == "Service":
            o["spec"] = {**o["spec"], "selector": {"svc": "geo"}}  # as it was when healthy

    class Lister:
        async def list_objects(self, kind: str, namespace: str | None = None) -> list[dict[str, object]]:
            return [o for o in objects if o["kind"] == kind]

    before = asyncio.run(capture(Lister(), "ns1", now=0.0))

    async def source(scope: str) -> LastGood | None:
        return before

    reasoner = RulebookMitigationReasoner(lastgood=source)
    first = CaseTools(case)
    asyncio.run(reasoner.mitigate(mitigate_request("ns1"), first))
    # The analyzer would patch the selector to the labels it inferred; the snapshot knows the exact old selector.
    assert [a.patch for a in first.executed] == [[{"op": "replace", "path": "/spec/selector", "value": {"svc": "geo"}}]]  # type: ignore[attr-defined]
    params = ", ".join(f"{k}={v}" for k, v in first.executed[0].params.items())
    reflection = f"Attempt 1 tried: patch Service/ns1/geo ({params}). Aborted and undone: mu did not go down."
    second = CaseTools(case)
    asyncio.run(reasoner.mitigate(mitigate_request("ns1", reflections=[reflection]), second))
    assert second.executed[0].patch[0] == {"op": "test", "path": "/spec/selector", "value": {"svc": "geo-v2"}}  # type: ignore[attr-defined]


def test_a_deleted_service_whose_pods_still_run_is_recreated_and_its_crashed_clients_restarted() -> None:
    tools, after = now("service-deleted")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, _ = candidates(healthy("service-deleted"), after, snap)
    assert tied and tied[0].change.key == "Service/shop/db" and tied[0].change.op == "deleted"
    create, *rest = tied[0].actions
    assert isinstance(create, Create) and create.manifest["spec"]["selector"] == {"app": "db"}
    assert [(a.verb, a.target) for a in rest] == [("rollout_restart", "Deployment/shop/api")]


def test_a_created_webhook_named_by_the_refusals_is_deleted_and_one_for_another_namespace_is_not() -> None:
    tools, after = now("webhook-created")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, loose = candidates(healthy("webhook-created"), after, snap)
    assert [c.change.key for c in tied] == ["ValidatingWebhookConfiguration/pod-guard"]
    assert tied[0].score >= 0.9 and isinstance(tied[0].actions[0], Delete)
    assert "ValidatingWebhookConfiguration/elsewhere" in {c.key for c in loose}


def test_a_pod_security_label_that_refuses_pods_is_put_back_on_the_scope_namespace_only() -> None:
    tools, after = now("namespace-pod-security")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    assert "Namespace/other" not in after.objects
    tied, _ = candidates(healthy("namespace-pod-security"), after, snap)
    assert [(c.change.key, c.change.pointer) for c in tied] == [("Namespace/shop", "/metadata/labels")]
    (patch,) = tied[0].actions
    assert isinstance(patch, Patch) and patch.patch == [
        {"op": "replace", "path": "/metadata/labels", "value": {"kubernetes.io/metadata.name": "shop"}}
    ]


def test_a_workload_created_since_the_healthy_state_is_not_deleted_because_its_own_pods_fail() -> None:
    tools, after = now("service-deleted")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    before = healthy("service-deleted")
    del before.objects["Deployment/shop/api"]  # as if api had been created after the healthy snapshot
    tied, loose = candidates(before, after, snap)
    assert "Deployment/shop/api" not in {c.change.key for c in tied}
    assert "Deployment/shop/api" in {c.key for c in loose}


def test_a_new_service_without_endpoints_and_its_new_workload_are_not_deleted() -> None:
    tools, after = now("service-deleted")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    before = healthy("service-deleted")
    for key in ("Deployment/shop/api", "Service/shop/db"):
        before.objects.pop(key, None)
    after.objects["Service/shop/api"] = {
        "kind": "Service",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"selector": {"app": "api"}},
    }
    snap.objects.setdefault("Service", []).append(after.objects["Service/shop/api"])
    tied, _ = candidates(before, after, snap)
    assert not {c.change.key for c in tied} & {"Deployment/shop/api", "Service/shop/api"}


def test_a_created_quota_named_by_the_refusal_is_deleted() -> None:
    tools, after = now("quota-created")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, _ = candidates(healthy("quota-created"), after, snap)
    assert tied[0].change.key == "ResourceQuota/shop/mem-cap" and tied[0].score >= 0.9
    assert isinstance(tied[0].actions[0], Delete)


def test_with_every_pod_ready_a_change_to_what_runs_is_a_candidate_and_other_changes_are_not() -> None:
    tools, after = now("env-removed-silent")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, loose = candidates(healthy("env-removed-silent"), after, snap)
    assert [(c.change.key, c.change.pointer) for c in tied] == [
        ("Deployment/shop/web", "/spec/template/spec/containers/0/env")
    ]
    (patch,) = tied[0].actions
    assert isinstance(patch, Patch) and patch.patch[0]["value"][-1] == {"name": "CART_ADDR", "value": "cart:8080"}
    assert "ConfigMap/shop/unrelated" in {c.key for c in loose}


def test_with_every_pod_ready_a_created_network_policy_is_a_candidate() -> None:
    tools, after = now("env-removed-silent")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    key = "NetworkPolicy/shop/deny-web"
    after.objects[key] = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-web", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress", "Egress"]},
    }
    tied, _ = candidates(healthy("env-removed-silent"), after, snap)
    policy = next(c for c in tied if c.change.key == key)
    assert isinstance(policy.actions[0], Delete)


def _captured(objects: list[dict[str, object]]) -> LastGood:
    class Lister:
        async def list_objects(self, kind: str, namespace: str | None = None) -> list[dict[str, object]]:
            return [
                o
                for o in objects
                if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") in (None, namespace))
            ]

    return asyncio.run(capture(Lister(), "shop", now=0.0))


def _web(pod_spec: dict[str, object]) -> dict[str, object]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web"}], **pod_spec}},
        },
    }


def test_a_dns_policy_and_its_config_are_one_unit_and_are_reverted_together() -> None:
    before = _captured([_web({"dnsPolicy": "ClusterFirst"})])
    after = _captured([_web({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.53"], "searches": []}})])
    [unit] = diff(before, after)
    assert unit.pointer == "/spec/template/spec/dnsPolicy" and "(with dnsConfig)" in unit.describe()
    [revert] = revert_actions(unit)
    assert isinstance(revert, Patch) and revert.patch == [
        {"op": "replace", "path": "/spec/template/spec/dnsPolicy", "value": "ClusterFirst"},
        {"op": "remove", "path": "/spec/template/spec/dnsConfig"},
    ]
    # a dnsConfig changed alone stays its own unit
    alone = _captured(
        [_web({"dnsPolicy": "ClusterFirst", "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}})]
    )
    assert [u.pointer for u in diff(before, alone)] == ["/spec/template/spec/dnsConfig"]


def test_with_every_pod_ready_a_changed_configmap_a_running_pod_reads_is_a_candidate() -> None:
    tools, after = now("flag-config-silent")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, loose = candidates(healthy("flag-config-silent"), after, snap)
    assert [(c.change.key, c.change.pointer) for c in tied] == [("ConfigMap/shop/flag-file", "/data")]
    assert "ConfigMap/shop/unrelated" in {c.key for c in loose}
    # ... and the mitigation reverts it (a finding under the mitigation's confidence floor would only inform)
    [finding] = findings(healthy("flag-config-silent"), after, snap)
    assert finding.confidence >= MIN_CONFIDENCE and finding.facts["revert"][0]["kind"] == "ConfigMap"


def test_the_configuration_of_a_service_an_unhealthy_pod_calls_is_tied_to_it() -> None:
    tools, after = now("flag-config-upstream")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, loose = candidates(healthy("flag-config-upstream"), after, snap)
    [flag] = [c for c in tied if c.change.key == "ConfigMap/shop/flag-file"]
    assert any("call Service/flags, whose pods read ConfigMap/flag-file" in w for w in flag.why)
    assert "ConfigMap/shop/unrelated" in {c.key for c in loose}


def test_with_every_pod_ready_a_deleted_service_whose_pods_still_run_is_recreated() -> None:
    tools, after = now("service-deleted-silent")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, loose = candidates(healthy("service-deleted-silent"), after, snap)
    assert [(c.change.key, c.change.op) for c in tied] == [("Service/shop/ad", "deleted")]
    (create,) = tied[0].actions
    assert isinstance(create, Create) and create.manifest["spec"]["selector"] == {"app": "ad"}
    assert "Service/shop/legacy" in {c.key for c in loose}  # its pods are gone: recreating it cannot help


def test_an_autoscaler_that_cannot_scale_ties_its_targets_resource_change_first() -> None:
    tools, after = now("autoscaler-requests-removed")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, loose = candidates(healthy("autoscaler-requests-removed"), after, snap)
    assert [(c.change.key, c.change.pointer) for c in tied] == [
        ("Deployment/shop/web", "/spec/template/spec/containers/0/resources"),
        ("Deployment/shop/web", "/spec/template/spec/containers/0/args"),
    ]
    assert "cannot scale it (HorizontalPodAutoscaler/web-capacity: ScalingActive=False" in tied[0].why[0]
    assert tied[0].score > tied[1].score
    assert "Deployment/shop/other" in {c.key for c in loose}  # not the autoscaler's target
    (revert,) = tied[0].actions
    assert isinstance(revert, Patch)
    assert revert.patch == [
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/resources",
            "value": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
        }
    ]


def test_a_readiness_probe_that_relays_the_program_verdict_is_reverted_after_the_cause_it_reports() -> None:
    case = "readiness-reports-flag"
    tools, after = now(case)
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, _ = candidates(healthy(case), after, snap)
    assert [c.change.key for c in tied] == ["ConfigMap/shop/flag-file", "Deployment/shop/web"]
    assert not tied[0].hides and "NOT_SERVING" in tied[1].hides
    probe = next(f for f in findings(healthy(case), after, snap) if f.target == "Deployment/shop/web")
    assert probe.confidence == MIN_CONFIDENCE and any("reverted last" in e for e in probe.evidence)

    before = healthy(case)

    async def source(scope: str) -> LastGood | None:
        return before

    reasoner = RulebookMitigationReasoner(lastgood=source)
    first = CaseTools(DATA / case)
    asyncio.run(reasoner.mitigate(mitigate_request("shop"), first))
    assert [(a.kind, a.name) for a in first.executed] == [("ConfigMap", "flag-file")]


def test_a_readiness_probe_that_reaches_nothing_is_no_verdict() -> None:
    case = "readiness-reports-flag"
    tools, after = now(case)
    tools.event_list = [
        {
            **e,
            "message": "Readiness probe failed: HTTP probe failed with statuscode: 404",
        }
        for e in tools.event_list
    ]
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, _ = candidates(healthy(case), after, snap)
    assert tied[0].change.key == "Deployment/shop/web" and not tied[0].hides


def test_taints_set_on_every_node_since_the_healthy_state_are_removed_from_all_of_them_at_once() -> None:
    before = healthy("nodes-tainted")

    async def source(scope: str) -> LastGood | None:
        return before

    tools, after = now("nodes-tainted")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, _ = candidates(before, after, snap)
    nodes = [c for c in tied if c.change.kind == "Node"]
    assert len(nodes) == 1 and [a.target for a in nodes[0].actions] == ["Node/node-1", "Node/node-2"]
    assert "the same taints were set on node-2" in nodes[0].why[-1]
    first = CaseTools(DATA / "nodes-tainted")
    asyncio.run(RulebookMitigationReasoner(lastgood=source).mitigate(mitigate_request("shop"), first))
    # Not a toleration for a taint the pods never needed to tolerate: the taints go, from both nodes in one attempt.
    assert [(a.target, a.patch) for a in first.executed] == [  # type: ignore[attr-defined]
        (f"Node/{n}", [{"op": "remove", "path": "/spec/taints"}]) for n in ("node-1", "node-2")
    ]
    params = ", ".join(f"{k}={v}" for k, v in first.executed[0].params.items())
    reflection = f"Attempt 1 tried: patch Node/node-1 ({params}). Aborted and undone: mu did not go down."
    second = CaseTools(DATA / "nodes-tainted")
    asyncio.run(
        RulebookMitigationReasoner(lastgood=source).mitigate(mitigate_request("shop", reflections=[reflection]), second)
    )
    assert [a.target for a in second.executed] == ["Deployment/shop/web"]


def test_the_cluster_dns_configuration_is_remembered_and_nothing_else_of_the_system_namespace() -> None:
    before = healthy("dns-corefile-silent")
    assert CLUSTER_DNS in before.kinds
    system = sorted(k for k in before.objects if "/kube-system/" in k)
    # The ConfigMap holding a Corefile and the server mounting it; not another ConfigMap or Deployment there.
    assert system == ["ConfigMap/kube-system/coredns", "Deployment/kube-system/coredns"]


def test_a_changed_corefile_is_reverted_when_names_do_not_resolve_and_every_pod_is_ready() -> None:
    tools, after = now("dns-corefile-silent")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    before = healthy("dns-corefile-silent")
    tied, loose = candidates(before, after, snap)
    assert [(c.change.key, c.change.pointer) for c in tied] == [("ConfigMap/kube-system/coredns", "/data")]
    assert tied[0].score >= 0.9 and "no such host" in tied[0].why[0] and tied[0].mechanism == "recent_change"
    (patch,) = tied[0].actions
    assert isinstance(patch, Patch) and patch.scope == "kube-system"
    assert patch.patch == [
        {"op": "replace", "path": "/data", "value": before.objects["ConfigMap/kube-system/coredns"]["data"]}
    ]
    assert "NXDOMAIN" not in patch.patch[0]["value"]["Corefile"]
    assert not any(c.key.startswith("Deployment/kube-system/metrics-server") for c in loose)


def test_a_changed_corefile_is_no_suspect_without_names_that_do_not_resolve() -> None:
    tools, after = now("dns-corefile-silent")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    snap.logs = {k: "GetAds failed: rpc error: code = DeadlineExceeded" for k in snap.logs}
    tied, loose = candidates(healthy("dns-corefile-silent"), after, snap)
    assert tied == [] and "ConfigMap/kube-system/coredns" in {c.key for c in loose}


def test_a_snapshot_that_did_not_read_the_cluster_dns_sees_no_change_there() -> None:
    _, after = now("dns-corefile-silent")
    before = healthy("dns-corefile-silent")
    before.kinds.remove(CLUSTER_DNS)
    for key in [k for k in before.objects if "/kube-system/" in k]:
        del before.objects[key]
    assert not [c for c in diff(before, after) if c.namespace == "kube-system"]


def test_the_diagnosis_of_a_dns_change_says_what_an_operator_must_grant() -> None:
    before = healthy("dns-corefile-silent")

    async def source(scope: str) -> LastGood | None:
        return before

    request = DiagnoseRequest(incident_id="i", scope="shop")
    builtin = asyncio.run(
        RulebookDiagnosisReasoner(lastgood=source, policy=WritePolicy()).diagnose(
            request, CaseTools(DATA / "dns-corefile-silent")
        )
    )
    assert "changed since the last healthy state: ConfigMap/kube-system/coredns" in builtin.summary
    assert "needs an operator's grant" in builtin.summary
    assert any(
        "an operator must add to STRATUS_WRITE_POLICY a grant of 'patch' on ConfigMap in scope 'kube-system'" in e
        and "STRATUS_LEASE_WIDENING_SCOPES" in e
        for e in builtin.evidence
    )
    granted = WritePolicy.parse("{scopes: {kube-system: {grants: [{kinds: [ConfigMap], verbs: [patch]}]}}}")
    with_grant = asyncio.run(
        RulebookDiagnosisReasoner(lastgood=source, policy=granted).diagnose(
            request, CaseTools(DATA / "dns-corefile-silent")
        )
    )
    assert "needs an operator's grant" not in with_grant.summary
    assert any("needs a writer on scope 'kube-system'" in e for e in with_grant.evidence)


def test_the_mitigation_asks_for_the_system_namespace_lease_for_a_dns_revert() -> None:
    before = healthy("dns-corefile-silent")

    async def source(scope: str) -> LastGood | None:
        return before

    tools = CaseTools(DATA / "dns-corefile-silent", refuse=namespace_lease("shop"))
    result = asyncio.run(RulebookMitigationReasoner(lastgood=source).mitigate(mitigate_request("shop"), tools))
    assert [a.target for a in tools.refused] == ["ConfigMap/kube-system/coredns"] and not tools.executed
    assert "needs a writer on scope kube-system" in result.reason
    widened = CaseTools(DATA / "dns-corefile-silent", refuse=namespace_lease("kube-system"))
    asyncio.run(
        RulebookMitigationReasoner(lastgood=source).mitigate(mitigate_request("shop", scope="kube-system"), widened)
    )
    assert [a.target for a in widened.executed] == ["ConfigMap/kube-system/coredns"]


def test_deleting_a_mutating_webhook_restarts_the_workloads_whose_pods_it_rewrote() -> None:
    tools, after = now("webhook-mutating")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    tied, _ = candidates(healthy("webhook-mutating"), after, snap)
    assert tied[0].change.key == "MutatingWebhookConfiguration/resource-policy"
    delete, *restarts = tied[0].actions
    assert isinstance(delete, Delete) and delete.kind == "MutatingWebhookConfiguration"
    # Only the proxy's pod differs from its template; api's pod predates the webhook.
    assert [(type(a), a.target) for a in restarts] == [(RolloutRestart, "Deployment/shop/proxy")]
    assert "keep the mutation until they are replaced" in tied[0].why[-1]
    decoy = [c for c in tied if c.change.key == "MutatingWebhookConfiguration/sidecar-injector"]
    assert all(len(c.actions) == 1 for c in decoy)  # it intercepts no pod here: nothing to restart


def test_a_corefile_without_the_reload_plugin_is_followed_by_a_restart_of_the_server_that_mounts_it() -> None:
    tools, after = now("dns-corefile-silent")
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    before = healthy("dns-corefile-silent")
    tied, _ = candidates(before, after, snap)
    assert len(tied[0].actions) == 1  # the healthy Corefile reloads itself
    for snapshot in (before, after):
        cm = snapshot.objects["ConfigMap/kube-system/coredns"]
        cm["data"] = {"Corefile": cm["data"]["Corefile"].replace("    reload\n", "")}
    tied, _ = candidates(before, after, snap)
    patch, restart = tied[0].actions
    assert isinstance(patch, Patch) and isinstance(restart, RolloutRestart)
    assert restart.target == "Deployment/kube-system/coredns"


def test_a_client_that_logs_nothing_is_heard_through_its_failed_spans() -> None:
    before = healthy("dns-corefile-silent")

    async def source(scope: str) -> LastGood | None:
        return before

    tools = CaseTools(DATA / "dns-corefile-silent")
    tools.log_texts = {}
    lookup = "dial tcp: lookup ad on 10.96.0.10:53: no such host"
    tools.trace_list = [
        {"spans": [{"logs": [{"fields": [{"key": "event", "value": "error"}, {"key": "message", "value": lookup}]}]}]}
    ]
    snap = asyncio.run(collect(tools, "shop", with_traces=False))
    found = asyncio.run(change_findings(source, tools, snap))
    assert [f.target for f in found] == ["ConfigMap/kube-system/coredns"] and snap.traces
