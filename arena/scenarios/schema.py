"""The scenario file format (YAML). A scenario says what to inject, what the documented symptoms are, the ground
truth an agent's answer is judged against, the documented fix, and the mitigation oracle. New scenarios are files.

Strict validation: unknown keys are errors, every step and check is a tagged union, and a file that does not fit is
rejected with the field path and the reason (``ScenarioError``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from arena.workload.generator import WorkloadSpec
from stratus.dataplane import DataPlaneError, check_args, check_forward, has_inverse, stopped_deployments

TASKS = ("detection", "localization", "analysis", "mitigation")
Task = Literal["detection", "localization", "analysis", "mitigation"]
SystemLevel = Literal["Hardware", "Operating System", "Virtualization", "Application"]
FaultType = Literal[
    "Misconfiguration",
    "Code Defect",
    "Authentication Issue",
    "Network/Storage Issue",
    "Operation Error",
    "Dependency Problem",
]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------------------------------- steps
class JsonPatchOp(_M):
    op: Literal["add", "remove", "replace", "move", "copy", "test"] = Field(description="RFC 6902 operation.")
    path: str = Field(description="JSON pointer.")
    value: Any = Field(None, description="Value for add/replace/test.")
    from_: str | None = Field(None, alias="from", description="Source pointer for move/copy.")


class PatchStep(_M):
    action: Literal["patch"]
    kind: str = Field(description="Kind of the object (Service, Deployment, PersistentVolume...).")
    name: str = Field(description="Object name.")
    namespace: str | None = Field(None, description="Namespace (default: the app's; ignored for cluster kinds).")
    patch_type: Literal["strategic", "merge", "json"] = Field("strategic", description="Kubernetes patch type.")
    patch: Any = Field(description="The patch body (a list of operations for json).")
    when: FieldCheck | None = Field(None, description="Only patch when this check holds (e.g. a PV is Released).")


class ScaleStep(_M):
    action: Literal["scale"]
    deployment: str = Field(description="Deployment to scale.")
    replicas: int = Field(ge=0, description="New replica count.")


class DeletePodsStep(_M):
    action: Literal["delete_pods"]
    selector: dict[str, str] | None = Field(None, description="Label selector of the pods.")
    name_prefix: str | None = Field(None, description="Or: pods whose name starts with this.")
    wait_replaced: bool = Field(False, description="Wait until the deleted pods are gone.")

    @model_validator(mode="after")
    def _one(self) -> DeletePodsStep:
        if not self.selector and not self.name_prefix:
            raise ValueError("give selector or name_prefix")
        return self


class RolloutRestartStep(_M):
    action: Literal["rollout_restart"]
    deployment: str = Field(description="Deployment to restart (kubectl rollout restart).")


class SetImageStep(_M):
    action: Literal["set_image"]
    deployment: str = Field(description="Deployment.")
    container: str = Field(description="Container name.")
    image: str = Field(description="New image.")


class ReplaceStep(_M):
    action: Literal["replace"]
    kind: Literal["Deployment"] = Field(description="Kind of the object deleted and re-created.")
    name: str = Field(description="Object name.")
    namespace: str | None = Field(None, description="Namespace (default: the app's).")
    json_patch: list[JsonPatchOp] = Field(description="Applied to the manifest before re-creating it.")


class DataPlaneOp(_M):
    """A step's change as one operation of Stratus's data-plane catalogue (``stratus.dataplane``), typed arguments."""

    operation: str = Field(description="A catalogue operation, e.g. mongodb.grant_roles.")
    args: dict[str, Any] = Field(default_factory=dict, description="Its arguments, as the catalogue types them.")

    @model_validator(mode="after")
    def _catalogue(self) -> DataPlaneOp:
        try:
            object.__setattr__(self, "args", check_args(self.operation, self.args))
            if not has_inverse(self.operation):
                raise DataPlaneError(f"{self.operation} has no inverse, so it never runs forward")
            check_forward(self.operation, self.args)
        except DataPlaneError as exc:
            raise ValueError(str(exc)) from exc
        return self


class ExecStep(_M):
    action: Literal["exec"]
    selector: dict[str, str] = Field(description="Labels of the pod (the first Running one is used).")
    container: str | None = Field(None, description="Container (default: the first).")
    command: list[str] = Field(min_length=1, description="argv, as kubectl exec -- takes it.")
    expect_exit: int | None = Field(0, description="Fail the step unless the command exits with this (None: any).")
    stops: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Deployments scaled to 0 (their pods gone) before the command runs and back to their replicas "
        "after it: a command the server refuses while clients are connected (a consumer group's offset reset).",
    )
    op: DataPlaneOp | None = Field(
        None,
        description="The same change as a data-plane catalogue operation: what a gateway that runs no free argv "
        "sends (the bench's scripted plan carries it as a typed exec action on the selected pod). The arena runs "
        "``command``; a test checks that the operation restores the scenario too.",
    )

    @model_validator(mode="after")
    def _same_stops(self) -> ExecStep:
        if self.op is not None and sorted(stopped_deployments(self.op.operation, self.op.args)) != sorted(self.stops):
            raise ValueError("the step's stops and the Deployments its operation stops differ")
        return self


class ApplyStep(_M):
    action: Literal["apply"]
    manifest: dict[str, Any] = Field(description="An object, created or updated.")


class DeleteStep(_M):
    action: Literal["delete"]
    kind: str = Field(description="Kind.")
    name: str = Field(description="Name.")
    namespace: str | None = Field(None, description="Namespace (default: the app's).")
    ignore_missing: bool = Field(True, description="A missing object is not an error.")


class RedeployStep(_M):
    action: Literal["redeploy"]
    delete_namespace: bool = Field(True, description="Delete the app's namespace first (kubectl delete namespace).")
    wait_deleted_s: float = Field(30.0, ge=0, description="Longest wait for the namespace to be gone.")


DNS1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class ChaosStep(_M):
    action: Literal["chaos"]
    name: str = Field(pattern=DNS1123, description="Name of the experiment (a DNS-1123 name; recover deletes it).")
    chaos: Literal["pod-failure", "container-kill", "network-loss", "network-delay"] = Field(
        description="Chaos Mesh action."
    )
    selector: dict[str, str] = Field(description="Labels of the target pods in the app's namespace.")
    mode: Literal["one", "all"] = Field("one", description="Chaos Mesh mode.")
    container_names: list[str] = Field(default_factory=list, description="Containers (container-kill).")
    loss: float = Field(0.0, ge=0, le=100, description="Percent of packets lost (network-loss).")
    latency_ms: float = Field(0.0, ge=0, description="Added latency (network-delay).")
    duration_s: float | None = Field(None, gt=0, description="How long it lasts (None: until recovered).")


class DeleteChaosStep(_M):
    action: Literal["delete_chaos"]
    name: str = Field(pattern=DNS1123, description="Experiment to delete.")


class RestoreStep(_M):
    action: Literal["restore"]
    kind: str = Field(description="Kind of an object of the app's manifests.")
    name: str = Field(description="Its name; it is put back exactly as the manifest has it (kubectl replace).")


class WaitRolloutStep(_M):
    action: Literal["wait_rollout"]
    deployment: str = Field(description="Deployment whose rollout must complete (kubectl rollout status).")
    timeout_s: float = Field(60.0, gt=0, description="Longest wait.")


class DeleteAllStep(_M):
    action: Literal["delete_all"]
    kind: str = Field(description="Kind (kubectl delete KIND -l SELECTOR), e.g. Job.")
    selector: dict[str, str] = Field(description="Labels of the objects deleted in the app's namespace.")


class CreateJobStep(_M):
    action: Literal["create_job"]
    cronjob: str = Field(
        description="CronJob whose current jobTemplate the Job is made from (kubectl create job --from)."
    )
    name: str = Field(pattern=DNS1123, description="Name of the new Job.")


class WaitJobStep(_M):
    action: Literal["wait_job"]
    job: str = Field(description="Job that must reach Complete (a Failed Job or a timeout fails the step).")
    timeout_s: float = Field(60.0, gt=0, description="Longest wait.")


class WaitGoneStep(_M):
    action: Literal["wait_gone"]
    kind: str = Field(description="Kind of the object.")
    name: str = Field(description="Object that must no longer exist (e.g. a deleted object whose finalizers clear).")
    namespace: str | None = Field(None, description="Namespace (default: the app's; ignored for cluster kinds).")
    timeout_s: float = Field(30.0, gt=0, description="Longest wait.")


class WaitReadyStep(_M):
    action: Literal["wait_ready"]
    timeout_s: float = Field(60.0, gt=0, description="Longest wait for every pod of the app to be Ready.")


class SleepStep(_M):
    action: Literal["sleep"]
    seconds: float = Field(gt=0, le=120, description="Seconds to let the cluster run as it is (e.g. a load burst).")


Step = Annotated[
    PatchStep
    | ScaleStep
    | DeletePodsStep
    | RolloutRestartStep
    | SetImageStep
    | ReplaceStep
    | ExecStep
    | ApplyStep
    | DeleteStep
    | RedeployStep
    | ChaosStep
    | DeleteChaosStep
    | RestoreStep
    | WaitRolloutStep
    | WaitReadyStep
    | DeleteAllStep
    | CreateJobStep
    | WaitJobStep
    | WaitGoneStep
    | SleepStep,
    Field(discriminator="action"),
]


# ------------------------------------------------------------------------------------------------------ checks
class FieldCheck(_M):
    """A check on one field of one object; ``path`` is dotted with ``[i]`` or ``[*]`` (every element)."""

    kind: str = Field(description="Kind of the object.")
    name: str = Field(description="Name of the object.")
    namespace: str | None = Field(None, description="Namespace (default: the app's).")
    path: str = Field(
        description="e.g. spec.ports[0].targetPort, spec.template.spec.containers[*].command or "
        "spec.template.spec.containers[0].env[name=PORT].value"
    )
    equals: Any = Field(None, description="Every value must equal this.")
    contains: Any = Field(None, description="Every value (a list or string) must contain this.")
    not_contains: Any = Field(None, description="No value may contain this.")
    absent: bool = Field(False, description="The field must be missing or null.")
    at_most: float | None = Field(
        None,
        description="Every value present must be a number at most this (a missing field passes: a default applies).",
    )

    @model_validator(mode="after")
    def _one(self) -> FieldCheck:
        given = [
            self.equals is not None,
            self.contains is not None,
            self.not_contains is not None,
            self.absent,
            self.at_most is not None,
        ]
        if sum(given) != 1:
            raise ValueError("give exactly one of equals, contains, not_contains, absent, at_most")
        return self


class ExecCheck(_M):
    """Run a command in a pod and look at its output (e.g. the MongoDB user's roles)."""

    selector: dict[str, str] = Field(description="Labels of the pod.")
    container: str | None = Field(None, description="Container (default: the first).")
    command: list[str] = Field(min_length=1, description="argv.")
    stdout_contains: str = Field(description="Text the output must contain.")


class WaitingReasonSymptom(_M):
    check: Literal["waiting_reason"]
    selector: dict[str, str] = Field(description="Pods.")
    reasons: list[str] = Field(description="Any of these waiting (or last terminated) reasons.")


class PodPhaseSymptom(_M):
    check: Literal["pod_phase"]
    selector: dict[str, str] = Field(description="Pods.")
    phase: str = Field(description="Expected phase, e.g. Pending.")


class NoPodsSymptom(_M):
    check: Literal["no_pods"]
    selector: dict[str, str] = Field(description="No pod may match.")


class NotReadySymptom(_M):
    check: Literal["not_ready"]
    selector: dict[str, str] = Field(description="Some matching pod is not Ready.")


class ReadySymptom(_M):
    check: Literal["ready"]
    selector: dict[str, str] = Field(description="Every matching pod is Ready (and there is one).")


class RestartsSymptom(_M):
    check: Literal["restarts"]
    selector: dict[str, str] = Field(description="Pods.")
    min: int = Field(1, description="Some container restarted at least this many times since injection.")


class LogSymptom(_M):
    check: Literal["log"]
    selector: dict[str, str] = Field(description="Pods whose logs are read.")
    contains: str = Field(description="A line containing this.")
    container: str | None = Field(None, description="Container (default: the first).")
    previous: bool = Field(False, description="Also look at the previous instance (crashed container).")


class EventSymptom(_M):
    check: Literal["event"]
    reason: str = Field(description="Event reason, e.g. FailedScheduling.")
    message_contains: str = Field("", description="Text in the message.")


class PvcPhaseSymptom(_M):
    check: Literal["pvc_phase"]
    name: str = Field(description="PersistentVolumeClaim.")
    phase: str = Field(description="Expected phase.")


class WorkloadSymptom(_M):
    check: Literal["workload"]
    min_error_ratio: float = Field(0.0, ge=0, le=1, description="(non-2xx + socket errors) / requests at least this.")
    min_p99_ms: float = Field(0.0, ge=0, description="p99 latency at least this.")


class ErrorSpanSymptom(_M):
    check: Literal["error_spans"]
    service: str = Field(description="Jaeger service with error spans in recent traces.")


class RequestSymptom(_M):
    check: Literal["request"]
    method: str = Field("GET", description="HTTP method.")
    path: str = Field(description="Front-end path, e.g. /user?username=Cornell_1&password=1111111111")
    count: int = Field(10, ge=1, description="Requests sent.")
    min_error_ratio: float = Field(0.0, ge=0, le=1, description="Share of failed requests at least this.")
    min_latency_ms: float = Field(0.0, ge=0, description="Median latency at least this.")


class HealthySymptom(_M):
    check: Literal["healthy"]


class FieldSymptom(_M):
    check: Literal["field"]
    field: FieldCheck = Field(description="A field check that holds while the fault is present.")


Symptom = Annotated[
    WaitingReasonSymptom
    | PodPhaseSymptom
    | NoPodsSymptom
    | NotReadySymptom
    | ReadySymptom
    | RestartsSymptom
    | LogSymptom
    | EventSymptom
    | PvcPhaseSymptom
    | WorkloadSymptom
    | ErrorSpanSymptom
    | RequestSymptom
    | HealthySymptom
    | FieldSymptom,
    Field(discriminator="check"),
]


# ------------------------------------------------------------------------------------------------------ scenario
class GroundTruth(_M):
    detection: bool = Field(description="The expected detection answer (Yes for a fault, No for noop).")
    localization: list[str] = Field(default_factory=list, description="The expected localization list.")
    localization_alternatives: list[list[str]] = Field(
        default_factory=list, description="Other accepted lists (AIOpsLab accepts mongodb-geo or geo)."
    )
    system_level: SystemLevel | None = Field(None, description="RCA system level.")
    fault_type: FaultType | None = Field(None, description="RCA fault type.")


class Binding(_M):
    """A value chosen at inject time from the cluster's state, used as ``${name}`` in any string of the scenario's
    steps and checks (e.g. "the node hosting the pod of geo"). Recorded at inject so recover and check see the same."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Placeholder name: ``${name}`` in strings.")
    node_of: dict[str, str] | None = Field(None, description="The node of the first Running pod with these labels.")
    pod_of: dict[str, str] | None = Field(None, description="The name of the first Running pod with these labels.")
    other_node_than: dict[str, str] | None = Field(
        None, description="A Ready node other than the one hosting the first Running pod with these labels."
    )

    @model_validator(mode="after")
    def _one(self) -> Binding:
        if sum(x is not None for x in (self.node_of, self.pod_of, self.other_node_than)) != 1:
            raise ValueError("give exactly one of node_of, pod_of, other_node_than")
        return self


class Oracle(_M):
    compat_passes_while_faulty: bool = Field(
        False, description="AIOpsLab's quirk: its oracle passes with the fault still present (documented, tested)."
    )
    all_ready: Literal["guarded", "unguarded", "wait_for_ready", "none"] = Field(
        description="AIOpsLab's shared check: guarded skips pods with null containerStatuses (Pending passes), "
        "unguarded fails on them, wait_for_ready waits for every pod to be Ready."
    )
    wait_for_ready_s: float = Field(60.0, gt=0, description="max_wait of wait_for_ready (compressed by the engine).")
    checks: list[FieldCheck] = Field(default_factory=list, description="Field checks of the compat oracle.")
    pod_exists: str | None = Field(None, description="compat also needs a pod whose name contains this.")
    restored: list[FieldCheck] = Field(default_factory=list, description="strict: the faulted field restored.")
    restored_exec: list[ExecCheck] = Field(default_factory=list, description="strict: state restored (exec).")
    workload: WorkloadSpec = Field(
        default_factory=lambda: WorkloadSpec(rate=10, duration_s=10, connections=2),
        description="strict: the post-fix workload that must see 0 non-2xx and 0 socket errors.",
    )
    durability: list[Step] = Field(
        default_factory=list,
        description="strict: run once the other checks pass (delete a pod so a replacement must be admitted, replay "
        "the trigger); then every pod must be Ready again within durability_s and the workload clean.",
    )
    durability_s: float = Field(30.0, gt=0, description="Longest wait for every pod Ready after the durability steps.")


class Scenario(_M):
    id: str | None = Field(None, description="Explicit problem id when AIOpsLab's does not follow family-task-N.")
    family: str = Field(description="AIOpsLab family, e.g. k8s_target_port-misconfig.")
    number: int | None = Field(None, ge=1, description="Variant number (the -N suffix); None for unnumbered ids.")
    app: Literal["hotel-reservation", "social-network", "astronomy-shop"] = Field(
        description="Application the scenario runs on."
    )
    capabilities: list[str] = Field(
        default_factory=list,
        description="Arena capabilities the fault exercises (the SREGym catalogue's tags: probes, scheduler, dns...).",
    )
    lite: bool = Field(False, description="A member of the SREGym-Lite set.")
    select: list[Binding] = Field(default_factory=list, description="Values chosen at inject time (``${name}``).")
    tasks: list[Task] = Field(min_length=1, description="Task variants AIOpsLab registers for this family.")
    description: str = Field(description="What the fault is, in one paragraph.")
    source: str = Field("", description="Where it comes from (AIOpsLab file or problem class).")
    persistent: bool = Field(True, description="The fault stays until recovered (Chaos Mesh ones may expire).")
    ground_truth: GroundTruth
    setup: list[Step] = Field(
        default_factory=list,
        description="Writes that deploy the app as the problem has it before any fault (SREGym's deploy-time "
        "overrides, a steady client): part of the healthy baseline. Engine.prepare runs them before the system under "
        "test watches; otherwise inject runs them first. recover undoes them too.",
    )
    inject: list[Step] = Field(default_factory=list, description="Writes that inject the fault.")
    recover: list[Step] = Field(default_factory=list, description="Writes that undo it (AIOpsLab recover_fault).")
    workload: WorkloadSpec = Field(
        default_factory=lambda: WorkloadSpec(rate=10, duration_s=10, connections=2),
        description="The wrk2 run started after injection.",
    )
    symptoms: list[Symptom] = Field(default_factory=list, description="What shows while the fault is present.")
    mitigation: list[Step] = Field(default_factory=list, description="The documented correct mitigation.")
    wrong_fix: list[Step] = Field(default_factory=list, description="A plausible fix that must not pass strict.")
    oracle: Oracle | None = Field(None, description="The mitigation oracle (required with the mitigation task).")

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.id is not None and len(self.tasks) != 1:
            raise ValueError("an explicit id names one task: give exactly one task")
        if "mitigation" in self.tasks and self.oracle is None:
            raise ValueError("a scenario with the mitigation task needs an oracle")
        if "localization" in self.tasks and not self.ground_truth.localization:
            raise ValueError("a scenario with the localization task needs ground_truth.localization")
        if "analysis" in self.tasks and not (self.ground_truth.system_level and self.ground_truth.fault_type):
            raise ValueError("a scenario with the analysis task needs ground_truth.system_level and fault_type")
        return self

    def ids(self) -> list[str]:
        if self.id is not None:
            return [self.id]
        if self.number is None:
            return [f"{self.family}-{t}" for t in self.tasks]
        return [f"{self.family}-{t}-{self.number}" for t in self.tasks]


PatchStep.model_rebuild()


class ScenarioError(ValueError):
    """A scenario file that does not fit the schema; the message names the file, the field and the reason."""


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def parse_scenario(data: Any, origin: str = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"{origin}: the file must hold a mapping, not {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        reasons = "; ".join(f"{_loc(err['loc'])}: {err['msg']}" for err in e.errors())
        raise ScenarioError(f"{origin}: invalid scenario: {reasons}") from None


def load_scenario(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML: {e}") from None
    return parse_scenario(data, str(path))
