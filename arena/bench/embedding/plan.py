"""The dataset plan (``plan.yaml``) as jobs: one arena run each, with its fault, ground truth and split."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from arena.scenarios import schema as s
from arena.scenarios.engine import CATALOGUE_DIR

PLAN_FILE = Path(__file__).with_name("plan.yaml")
Split = Literal["train", "seen", "unseen"]
_APP_SUFFIX = re.compile(r"_(hotel_res|hotel_reservation|social_net|social_network)$")
_SHORT = {"hotel-reservation": "hotel", "social-network": "social"}


class ChaosVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    app: str = Field(description="Application.")
    chaos: Literal["pod-failure", "container-kill", "network-loss", "network-delay"] = Field(description="Action.")
    label: str = Field(description="Pod label that names the service.")
    targets: list[str] = Field(description="Services to target, one run each.")
    latency_ms: float = Field(0.0, ge=0, description="network-delay: added latency.")
    loss: float = Field(0.0, ge=0, le=100, description="network-loss: percent lost.")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window_s: float = Field(gt=0, description="Window length.")
    stride_s: float = Field(gt=0, description="Stride between windows.")
    clean_s: float = Field(gt=0, description="Healthy time before the fault.")
    fault_s: float = Field(gt=0, description="Time with the fault.")
    recover_s: float = Field(ge=0, description="Time recorded after recovery.")
    rate_interval: str = Field(description="PromQL rate() interval.")
    scrape_s: float = Field(gt=0, description="Prometheus scrape interval.")
    load_rps: dict[str, float] = Field(description="Mean request rate per app.")
    held_out_families: list[str] = Field(description="Families only evaluated.")
    transient_families: dict[str, float] = Field(
        default_factory=dict, description="Families whose effect ends by itself: seconds it lasts."
    )
    chaos: list[ChaosVariant] = Field(default_factory=list, description="Extra telemetry-only variants.")


class Job(BaseModel):
    """One arena run."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Unique run id.")
    app: str = Field(description="Application.")
    family: str = Field(description="Fault family (app suffix removed); noop_detection for clean runs.")
    split: Split = Field(description="train, seen (evaluated, family trained on) or unseen (family never trained).")
    seed: int = Field(description="Seed of the load and of the chaos target choice.")
    localization: list[str] = Field(default_factory=list, description="Ground truth: the faulty services.")
    scenario: dict[str, Any] = Field(description="The scenario (arena/scenarios schema) to inject and recover.")

    @property
    def noop(self) -> bool:
        return not self.scenario.get("inject")


def load_plan(path: Path = PLAN_FILE) -> Plan:
    return Plan.model_validate(yaml.safe_load(path.read_text()))


def family_of(name: str) -> str:
    return _APP_SUFFIX.sub("", name)


def jobs(plan: Plan, catalogue: Path = CATALOGUE_DIR, apps: tuple[str, ...] | None = None) -> list[Job]:
    out: list[Job] = []
    for f in sorted(catalogue.glob("*.yaml")):
        sc = s.load_scenario(f)
        if apps and sc.app not in apps:
            continue
        family = family_of(sc.family)
        doc = sc.model_dump(mode="json", by_alias=True, exclude_none=True)
        base = f"{f.stem}"
        if family in plan.held_out_families:
            out.append(_job(base, sc.app, family, "unseen", 1, sc.ground_truth.localization, doc))
        else:
            out.append(_job(base, sc.app, family, "train", 0, sc.ground_truth.localization, doc))
            out.append(_job(f"{base}-b", sc.app, family, "seen", 1, sc.ground_truth.localization, doc))
    for v in plan.chaos:
        if apps and v.app not in apps:
            continue
        family = v.chaos.replace("-", "_")
        for i, target in enumerate(v.targets):
            split: Split = "unseen" if family in plan.held_out_families else ("train" if i % 2 == 0 else "seen")
            name = f"ds-{_SHORT.get(v.app, v.app)}-{v.chaos}"
            step: dict[str, Any] = {
                "action": "chaos",
                "name": name,
                "chaos": v.chaos,
                "selector": {v.label: target},
                "mode": "one",
            }
            if v.chaos == "network-delay":
                step["latency_ms"] = v.latency_ms
            if v.chaos == "network-loss":
                step["loss"] = v.loss
            doc = {
                "family": f"{family}_{_SHORT.get(v.app, v.app)}",
                "app": v.app,
                "tasks": ["detection"],
                "description": f"{v.chaos} on {target} (dataset variant)",
                "ground_truth": {"detection": True, "localization": [target]},
                "inject": [step],
                "recover": [{"action": "delete_chaos", "name": name}],
            }
            s.Scenario.model_validate(doc)
            out.append(_job(f"{name}-{target}", v.app, family, split, i, [target], doc))
    return out


def _job(rid: str, app: str, family: str, split: Split, seed: int, loc: list[str], doc: dict[str, Any]) -> Job:
    return Job(id=rid, app=app, family=family, split=split, seed=seed, localization=list(loc), scenario=doc)
