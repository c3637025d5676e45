"""One test per confinement rule (DESIGN.md section 3): each refusal names what was refused, why, and what to do."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stratus.actions import Delete, Exec, Get, Scale
from stratus.confinement import Refusal, confine_action, confine_command


def refused(line: str) -> Refusal:
    with pytest.raises(Refusal) as info:
        confine_command(line, "write")
    return info.value


def test_pipe() -> None:
    r = refused("kubectl get pods | grep web")
    assert r.rule == "pipe"
    assert str(r).startswith("Pipe detected: |. Such commands are not supported.")
    assert "-l SELECTOR" in str(r)


@pytest.mark.parametrize("line", ["kubectl get po && kubectl get svc", "kubectl get po || true", "kubectl get po; ls"])
def test_chaining(line: str) -> None:
    r = refused(line)
    assert r.rule == "chaining"
    assert "Such commands are not supported" in str(r) and "one kubectl command per call" in str(r)


def test_newline_is_chaining() -> None:
    assert refused("kubectl get po\nkubectl get svc").rule == "chaining"


def test_background() -> None:
    assert refused("kubectl get po &").rule == "background"


@pytest.mark.parametrize("line", ["kubectl get pod $(cat name)", "kubectl get pod `cat name`", 'kubectl get "$(x)"'])
def test_command_substitution(line: str) -> None:
    r = refused(line)
    assert r.rule == "substitution"
    assert str(r).startswith("Command substitution detected")


@pytest.mark.parametrize("line", ["kubectl get po > out.txt", "kubectl get po >> out", "kubectl apply -f < x.yaml"])
def test_redirects(line: str) -> None:
    r = refused(line)
    assert r.rule == "redirect"
    assert str(r).startswith("Redirection detected")


@pytest.mark.parametrize(
    "line",
    [
        "for p in a b; do kubectl delete pod $p; done",
        "while true; do kubectl get po; done",
        "if kubectl get po; then x; fi",
    ],
)
def test_flow_control(line: str) -> None:
    r = refused(line)
    assert r.rule == "flow_control"
    assert "Shell flow control detected" in str(r)


def test_function_definition() -> None:
    assert refused("f() { kubectl get po; }").rule == "flow_control"


@pytest.mark.parametrize(
    ("line", "flag"),
    [
        ("kubectl exec -it web -- sh", "-it"),
        ("kubectl exec -ti web -- sh", "-ti"),
        ("kubectl exec -i web -- sh", "-i"),
        ("kubectl exec -t web -- sh", "-t"),
        ("kubectl run x --image=busybox --stdin", "--stdin"),
        ("kubectl exec web --tty -- sh", "--tty"),
    ],
)
def test_interactive_flags(line: str, flag: str) -> None:
    r = refused(line)
    assert r.rule == "interactive"
    assert str(r).startswith(f"Interactive flag detected: {flag}. Such commands are not supported.")


def test_flags_of_the_container_command_are_not_interactive() -> None:
    assert confine_command("kubectl exec web -- grep -i -t x /etc/hosts", "write")[-1] == "/etc/hosts"


@pytest.mark.parametrize("sub", ["edit", "debug", "attach", "port-forward", "proxy", "cp"])
def test_forbidden_commands(sub: str) -> None:
    r = refused(f"kubectl {sub} deploy/web")
    assert r.rule == "forbidden_command"
    assert f"kubectl {sub}. Such commands are not supported." in str(r)
    assert len(str(r).split("not supported.")[1].strip()) > 20  # what to do instead


@pytest.mark.parametrize("line", ["kubectl apply -f -", "kubectl create --filename=-", "kubectl replace -f=-"])
def test_stdin_manifest(line: str) -> None:
    r = refused(line)
    assert r.rule == "stdin_manifest"
    assert "-f FILE" in str(r)


@pytest.mark.parametrize("line", ["kubectl logs -f web", "kubectl logs web --follow"])
def test_logs_follow(line: str) -> None:
    r = refused(line)
    assert r.rule == "follow"
    assert "a tool call must return" in str(r) and "--tail=N" in str(r)


@pytest.mark.parametrize("line", ["kubectl get pods -w", "kubectl get pods --watch", "kubectl get po --watch-only"])
def test_get_watch(line: str) -> None:
    assert refused(line).rule == "watch"


def test_watch_false_is_fine() -> None:
    confine_command("kubectl get pods --watch=false", "read")


@pytest.mark.parametrize(
    "line",
    [
        "kubectl delete ns shop",
        "kubectl delete namespace shop",
        "kubectl delete namespaces/shop",
        "kubectl delete ns,pod x",
    ],
)
def test_namespace_deletion_command(line: str) -> None:
    r = refused(line)
    assert r.rule == "namespace_deletion"
    assert "cannot be undone" in str(r)


def test_namespace_deletion_action() -> None:
    with pytest.raises(Refusal) as info:
        confine_action(Delete(kind="Namespace", name="shop"), "write")
    assert info.value.rule == "namespace_deletion"


@pytest.mark.parametrize(
    "line", ["kubectl delete pod -l app=web", "kubectl delete pods --all", "kubectl scale deploy -l a=b"]
)
def test_selector_writes(line: str) -> None:
    r = refused(line)
    assert r.rule == "selector_write"
    assert "pre-image" in str(r)


def test_selector_reads_are_fine() -> None:
    confine_command("kubectl get pods -l app=web -A", "read")


def test_read_only_role_cannot_write() -> None:
    with pytest.raises(Refusal) as info:
        confine_action(Scale(kind="deploy", namespace="shop", name="web", replicas=0), "read")
    assert str(info.value).startswith("Write operation 'scale' refused: this agent has a read-only role.")
    confine_action(Get(kind="pod", namespace="shop", name="web"), "read")


def test_exec_is_a_catalogue_operation_never_free_argv() -> None:
    with pytest.raises(ValidationError, match="catalogue"):
        Exec(namespace="s", name="p", operation="shell", args={"argv": ["touch", "/x"]})
    with pytest.raises(ValidationError):
        Exec(namespace="s", name="p", command=["touch", "/x"], inverse=["true"])  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="user"):
        Exec(
            namespace="s",
            name="p",
            operation="mongodb.drop_user",
            args={"db": "admin", "user": "x');db.dropDatabase('"},
        )
    confine_action(
        Exec(namespace="s", name="p", operation="mongodb.create_declared_user", args={"db": "admin", "user": "u"}),
        "write",
    )


@pytest.mark.parametrize(
    "line", ["kubectl get po --kubeconfig /etc/k", "kubectl --context=prod get po", "kubectl get po --as admin"]
)
def test_identity_flags(line: str) -> None:
    assert refused(line).rule == "identity_flag"


def test_only_kubectl() -> None:
    r = refused("rm -rf /")
    assert r.rule == "not_kubectl"


def test_unbalanced_quotes() -> None:
    assert refused("kubectl patch deploy x -p '{").rule == "syntax"


def test_quoted_data_is_not_shell_syntax() -> None:
    tokens = confine_command("""kubectl patch deploy x -p '{"a": "b;c|d>e $(f)"}'""", "write")
    assert tokens[-1] == '{"a": "b;c|d>e $(f)"}'


def test_empty() -> None:
    assert refused("   ").rule == "empty"
