"""Identity validation (Kubernetes name rules), the request builder (one request; the dry run differs only in
dryRun) and bounded inputs (sizes, depth, YAML aliases, device files, URLs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stratus import bounds
from stratus.actions import ACTION_ADAPTER, Action, Delete, Patch, Scale
from stratus.confinement import Refusal
from stratus.identity import InvalidIdentity, check_name, check_namespace
from stratus.kubectl import parse_command
from stratus.writerequest import WireRequest, build_write, object_path

HOSTILE_NAMES = [
    "web#",
    "web#frag",
    "../../../namespaces/victim",
    "..",
    ".",
    "web/../../x",
    "web%2F..%2Fx",
    "web?dryRun=",
    "w\u0435b",  # Cyrillic ie
    "web\u200b",  # zero-width space
    "WEB",
    "web ",
    "web\n",
    "-web",
    "web-",
    "a" * 254,
    "",
    "web;rm",
    "web\\x",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_everywhere(name: str) -> None:
    with pytest.raises(InvalidIdentity):
        check_name("ConfigMap", name)
    for _ in range(2):  # object_path is memoised; a refusal is raised again, never remembered as a path
        with pytest.raises(InvalidIdentity):
            object_path("ConfigMap", "ns", name)
    with pytest.raises(ValidationError):
        Delete(kind="ConfigMap", namespace="ns", name=name)
    with pytest.raises(ValidationError):
        Scale(kind="Deployment", namespace=name or "x/y", name="web", replicas=1)


def test_rules_per_kind() -> None:
    assert check_name("Pod", "web-0.cache") == "web-0.cache"
    with pytest.raises(InvalidIdentity, match="DNS-1035"):
        check_name("Service", "1web")
    with pytest.raises(InvalidIdentity, match="DNS-1123 label"):
        check_name("Namespace", "a.b")
    with pytest.raises(InvalidIdentity, match="non-ASCII"):
        check_namespace("d\u0435fault")
    with pytest.raises(InvalidIdentity, match="64 characters"):
        check_namespace("a" * 64)


@pytest.mark.parametrize(
    "line",
    [
        "kubectl scale deploy web# --replicas=0 -n shop",
        "kubectl delete configmap ../../../namespaces/victim -n shop",
        "kubectl delete cm/..%2F..%2Fnamespaces%2Fvictim -n shop",
        "kubectl patch deploy w\u0435b -p {} -n shop",
        "kubectl scale deploy web --replicas=1 -n ../victim",
        "kubectl get pods -n 'kube-system/../victim'",
    ],
)
def test_kubectl_lines_with_hostile_identity_are_refused(line: str) -> None:
    with pytest.raises(Refusal):
        parse_command(line, role="write", namespace="shop")


def _writes() -> list[tuple[Action, dict[str, Any] | None]]:
    base = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7", "uid": "u1"},
        "spec": {"replicas": 2},
    }
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}
    cm_base = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": "3", "uid": "u2"}}
    return [
        (Scale(kind="Deployment", namespace="shop", name="web", replicas=3), base),
        (Patch(kind="Deployment", namespace="shop", name="web", patch={"spec": {"paused": True}}), base),
        (Delete(kind="ConfigMap", namespace="shop", name="c"), cm_base),
        (ACTION_ADAPTER.validate_python({"verb": "apply", "manifest": manifest}), cm_base),
        (ACTION_ADAPTER.validate_python({"verb": "create", "manifest": manifest}), None),
        (ACTION_ADAPTER.validate_python({"verb": "cordon", "name": "node-1"}), None),
    ]


@pytest.mark.parametrize(("action", "base"), _writes())
def test_dry_run_differs_from_the_write_only_in_dry_run(action: Action, base: dict[str, Any] | None) -> None:
    req = build_write(action, base)
    dry = req.dry_run()
    assert dry.is_dry_run and not req.is_dry_run
    assert (dry.method, dry.path, dry.content_type) == (req.method, req.path, req.content_type)
    assert [q for q in dry.query if q != ("dryRun", "All")] == list(req.query)
    if req.method == "DELETE":
        assert {k: v for k, v in dry.body.items() if k != "dryRun"} == req.body and dry.body["dryRun"] == ["All"]
    else:
        assert dry.body == req.body
    assert "#" not in req.path and "?" not in req.path and "/../" not in req.path
    name = action.name
    assert name is not None and (req.path.endswith("/" + name) or req.method == "POST")


def test_wire_request_is_frozen() -> None:
    req = WireRequest("GET", "/api/v1/pods")
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.path = "/x"  # type: ignore[misc]


@given(st.text(max_size=80))
@settings(max_examples=400, deadline=None)
def test_fuzzed_names_never_build_another_objects_path(name: str) -> None:
    try:
        path = object_path("ConfigMap", "shop", name)
    except InvalidIdentity:
        return
    assert path == f"/api/v1/namespaces/shop/configmaps/{name}"


# --- bounds ------------------------------------------------------------------------------------------------------


def test_yaml_alias_bomb_is_refused() -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b]\n'
    with pytest.raises(Refusal, match="anchors or aliases") as exc:
        bounds.load_yaml(bomb, "The patch")
    assert exc.value.rule == "bounds"


def test_deep_and_large_documents_are_refused() -> None:
    with pytest.raises(Refusal, match="nested more than"):
        bounds.load_yaml("[" * 5000 + "]" * 5000, "The patch")
    with pytest.raises(Refusal, match="bytes"):
        bounds.load_yaml("a: " + "x" * (bounds.MAX_BODY_BYTES + 1), "The patch")
    deep: Any = {}
    cur = deep
    for _ in range(200):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(Refusal, match="nested"):
        bounds.check_value(deep, "The patch")
    with pytest.raises(Refusal, match="values"):
        bounds.check_value(list(range(bounds.MAX_NODES + 5)), "The patch")


@pytest.mark.parametrize("name", ["/dev/zero", "/dev/stdin", "/proc/self/environ", "/sys/kernel/mm", "http://x/y.yaml"])
def test_device_kernel_files_and_urls_are_refused_on_both_faces(name: str) -> None:
    for role in ("read", "write"):
        with pytest.raises(Refusal):
            parse_command(f"kubectl apply -f {name}", role=role, namespace="shop")  # type: ignore[arg-type]
    with pytest.raises(Refusal, match="refused"):
        bounds.read_file(name, None)


def test_links_into_dev_and_oversized_files_are_refused(tmp_path: Path) -> None:
    link = tmp_path / "m.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(Refusal, match="/dev"):
        parse_command(f"kubectl apply -f {link}", role="write", namespace="shop")
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * (bounds.MAX_BODY_BYTES + 10))
    with pytest.raises(Refusal, match="bytes"):
        parse_command(f"kubectl apply -f {big}", role="write", namespace="shop")


def test_long_command_lines_and_argv_are_refused() -> None:
    with pytest.raises(Refusal, match="characters long"):
        parse_command("kubectl get pods " + "x" * bounds.MAX_COMMAND_CHARS, namespace="shop")
    with pytest.raises(Refusal, match="arguments"):
        bounds.check_argv(["a"] * (bounds.MAX_ARGS + 1))


# --- fuzzing: command lines and tool-call arguments ----------------------------------------------------------------

_TOKENS = st.sampled_from(
    [
        "delete",
        "scale",
        "patch",
        "get",
        "set",
        "image",
        "cm",
        "deploy",
        "ns",
        "conf",
        "web",
        "-n",
        "shop",
        "victim",
        "--replicas=0",
        "-p",
        "'{}'",
        "|",
        ";",
        "&&",
        "$(x)",
        "`x`",
        ">",
        "-it",
        "-f",
        "/dev/zero",
        "--all",
        "-A",
        "..",
        "../victim",
        "#",
        "--",
        "exec",
        "sh",
        "w\u0435b",
        "web#",
        "a%2Fb",
        "app=x",
        "--type",
        "json",
        "'[]'",
    ]
)


def _own_path(action: Action) -> None:
    """A write that validated builds a path that is exactly its own object's."""
    if not action.is_write or action.verb in ("exec", "set_image", "set_env", "rollout_restart", "rollout_undo"):
        return
    base = {"metadata": {"name": action.name, "namespace": action.namespace, "resourceVersion": "1", "uid": "u"}}
    req = build_write(action, base)
    segments = req.path.split("/")
    assert action.namespace is None or segments[segments.index("namespaces") + 1] == action.namespace
    if req.method != "POST":
        assert segments[-1] == action.name


@given(st.lists(_TOKENS, min_size=1, max_size=9).map(lambda ts: "kubectl " + " ".join(ts)))
@settings(max_examples=600, deadline=None)
def test_fuzzed_command_lines_are_refused_or_act_on_their_own_objects(line: str) -> None:
    try:
        actions = parse_command(line, role="write", namespace="shop")
    except Refusal:
        return
    for action in actions:
        _own_path(action)


@given(
    st.fixed_dictionaries(
        {
            "verb": st.sampled_from(["delete", "scale", "patch", "cordon", "exec", "apply", "get"]),
            "kind": st.sampled_from(["ConfigMap", "Deployment", "Namespace", "Node", "Pod", "cm", "x"]),
            "namespace": st.one_of(st.none(), st.text(max_size=12)),
            "name": st.text(max_size=12),
        },
        optional={
            "replicas": st.integers(min_value=-5, max_value=2**40),
            "patch": st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
            "operation": st.text(max_size=20),
            "args": st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=3),
            "command": st.lists(st.text(max_size=5), max_size=3),
        },
    )
)
@settings(max_examples=600, deadline=None)
def test_fuzzed_tool_calls_are_refused_or_act_on_their_own_objects(call: dict[str, Any]) -> None:
    try:
        action = ACTION_ADAPTER.validate_python(call)
    except ValidationError:
        return
    _own_path(action)


def test_files_outside_the_workdir_and_non_field_patch_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("root:*:1:0:99999:7:::\ndaemon:*:1:0:99999:7:::\n")
    with pytest.raises(Refusal, match="outside the working directory"):
        parse_command(
            "kubectl patch deploy web --patch-file /etc/hostname", role="write", namespace="s", workdir=tmp_path
        )
    with pytest.raises(Refusal, match="not one"):
        parse_command("kubectl patch deploy web --patch-file p.yaml", role="write", namespace="s", workdir=tmp_path)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("data: {k: !!binary aGVsbG8=}\n", "!!binary"),
        ("data: !!set {a, b}\n", "!!set"),
        ("data: !!omap [{a: 1}]\n", "!!omap"),
        ("data: !!pairs [{a: 1}]\n", "!!pairs"),
        ("spec: {replicas: .nan}\n", "'.nan'"),
        ("spec: {replicas: -.inf}\n", "'-.inf'"),
    ],
)
def test_yaml_values_without_a_json_form_are_refused(text: str, said: str) -> None:
    """A Kubernetes object is JSON: a YAML type with no JSON form would either crash the request's encoder or reach the
    server as something other than what the document shows."""
    with pytest.raises(Refusal) as info:
        bounds.load_yaml_all(text, "Manifest file m.yaml")
    assert info.value.rule == "bounds" and said in str(info.value) and "Manifest file m.yaml refused" in str(info.value)


def test_an_unquoted_date_stays_the_string_it_was_written_as() -> None:
    doc = bounds.load_yaml("metadata: {annotations: {at: 2001-12-14t21:59:43.10-05:00, day: 2002-12-14}}\n", "m")
    assert doc["metadata"]["annotations"] == {"at": "2001-12-14t21:59:43.10-05:00", "day": "2002-12-14"}
    assert bounds.load_yaml("spec: {replicas: 2, ratio: 0.5}\n", "m") == {"spec": {"replicas": 2, "ratio": 0.5}}


@pytest.mark.parametrize("metadata", [["conf", "victim"], "conf", 7])
def test_a_manifest_whose_metadata_is_not_a_mapping_is_an_invalid_action(metadata: Any) -> None:
    with pytest.raises(ValidationError, match="metadata is a"):
        ACTION_ADAPTER.validate_python(
            {"verb": "apply", "manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}}
        )


@pytest.mark.parametrize("blank", ["\u00a0", "\u2003", "\u3000", "\u200b"])
def test_unicode_spaces_are_never_trimmed_off_a_word(blank: str) -> None:
    """shlex splits on ASCII blanks only; trimming a trailing U+00A0 off the line would turn the namespace 'scope\\xa0'
    (which no object has) into 'scope'."""
    with pytest.raises(Refusal, match="namespace"):
        parse_command(f"kubectl delete cm conf -n scope{blank}", role="write", namespace="scope")
    assert parse_command("kubectl get cm conf -n scope \t\r\n", namespace="x")[0].namespace == "scope"
