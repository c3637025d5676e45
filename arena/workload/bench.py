"""``stratus arena bench-apps``: how fast the applications come up, how fast faults show, how much memory it takes.

Runs an arena with the applications in this process, deploys them through the Kubernetes API like ``arena up``, and
prints: deploy -> every pod Ready, and -> first clean workload, per app; inject -> first symptom and -> every
documented symptom, per scenario; the process's resident memory with both apps deployed (it includes the benchmark's
own client, so it is an upper bound for the arena).
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

import typer

from arena.apps import APPS
from arena.scenarios.engine import Engine, PlaneClient, Registry, wait_for
from arena.scenarios.kube import Kube
from arena.telemetry.plane import AppsArena
from arena.timing import Timing
from arena.workload.generator import WorkloadSpec

SCENARIOS = [
    "k8s_target_port-misconfig-mitigation-1",
    "scale_pod_zero_social_net-mitigation-1",
    "assign_to_non_existent_node_social_net-mitigation-1",
    "revoke_auth_mongodb-mitigation-1",
    "misconfig_app_hotel_res-mitigation-1",
    "wrong_bin_usage-mitigation-1",
    "network_delay_hotel_res-detection-1",
]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_clean(engine: Engine, namespace: str) -> None:
    probe = WorkloadSpec(rate=20, duration_s=1, connections=2)
    wait_for("a clean workload", lambda: engine._plane().workload(namespace, probe).clean, 120, 0.05)


def main(fast: bool = False, scenarios: list[str] | None = None) -> dict[str, float]:
    figures: dict[str, float] = {}
    gc.collect()
    base = rss_mb()
    timing = Timing.fast() if fast else Timing()
    typer.echo(f"timings: {'Timing.fast()' if fast else 'Timing() (the arena defaults)'}")
    with AppsArena(timing=timing) as arena, tempfile.TemporaryDirectory() as tmp:
        kube = Kube.from_kubeconfig(str(arena.write_kubeconfig(Path(tmp) / "config")))
        engine = Engine(kube, PlaneClient(arena.plane_url), time_scale=0.25)
        for name, app in APPS.items():
            t0 = time.monotonic()
            engine.deploy(app)
            t_deployed = time.monotonic() - t0
            engine.wait_ready(app.namespace, 120)
            t_ready = time.monotonic() - t0
            wait_clean(engine, app.namespace)
            t_clean = time.monotonic() - t0
            pods = len(engine.pods(app.namespace))
            typer.echo(
                f"arena up {name:18s} {pods:3d} pods: manifests applied {t_deployed:6.2f}s, all Ready "
                f"{t_ready:6.2f}s, first clean workload {t_clean:6.2f}s"
            )
            figures[f"up_ready_s[{name}]"] = t_ready
            figures[f"up_clean_s[{name}]"] = t_clean
        gc.collect()
        figures["rss_mb_both_apps"] = rss_mb()
        typer.echo(
            f"memory: RSS {figures['rss_mb_both_apps']:.1f} MB with both apps deployed "
            f"({base:.1f} MB before the arena started; the difference is the arena with its apps)"
        )
        registry = Registry()
        for pid in scenarios or SCENARIOS:
            scenario, _ = registry.get(pid)
            app = APPS[scenario.app]
            t0 = time.monotonic()
            engine.inject(scenario)
            t_inject = time.monotonic() - t0
            seen: dict[int, float] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(seen) < len(scenario.symptoms):
                for i, sym in enumerate(scenario.symptoms):
                    if i not in seen and engine.symptom(scenario, sym).present:
                        seen[i] = time.monotonic() - t0
            first = min(seen.values(), default=float("nan"))
            t_all = max(seen.values(), default=float("nan"))
            kinds = {scenario.symptoms[i].check: round(t, 2) for i, t in sorted(seen.items(), key=lambda kv: kv[1])}
            typer.echo(
                f"inject {pid:52s} applied {t_inject:5.2f}s, first symptom {first:5.2f}s, all "
                f"{len(seen)}/{len(scenario.symptoms)} symptoms {t_all:5.2f}s  {kinds}"
            )
            figures[f"first_symptom_s[{pid}]"] = first
            engine.recover(scenario)
            engine.wait_ready(app.namespace, 120)
            wait_clean(engine, app.namespace)
        kube.close()
    return figures
