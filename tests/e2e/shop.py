"""A small three-tier app on an arena with the default behaviour, for the safety-core end-to-end tests."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.conftest import bad_image

TIERS = ("web", "cart", "db")


def apps_api(kubeconfig: Path) -> tuple[k8s.ApiClient, k8s.CoreV1Api, k8s.AppsV1Api]:
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    return api, k8s.CoreV1Api(api), k8s.AppsV1Api(api)


def deploy_shop(kubeconfig: Path, ns: str) -> None:
    api, core, apps = apps_api(kubeconfig)
    core.create_namespace({"metadata": {"name": ns}})
    for name in TIERS:
        labels = {"app": name}
        container = {"name": name, "image": f"shop/{name}:1.0", "ports": [{"containerPort": 8080}]}
        apps.create_namespaced_deployment(
            ns,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
                },
            },
        )
        core.create_namespaced_service(
            ns,
            {"metadata": {"name": name}, "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]}},
        )
    api.close()


def scale(kubeconfig: Path, ns: str, name: str, replicas: int) -> None:
    api, _, apps = apps_api(kubeconfig)
    apps.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": replicas}})
    api.close()


def replicas(kubeconfig: Path, ns: str) -> dict[str, int]:
    api, _, apps = apps_api(kubeconfig)
    out = {d.metadata.name: d.spec.replicas for d in apps.list_namespaced_deployment(ns).items}
    api.close()
    return out


def images(kubeconfig: Path, ns: str) -> dict[str, str]:
    api, _, apps = apps_api(kubeconfig)
    out = {d.metadata.name: d.spec.template.spec.containers[0].image for d in apps.list_namespaced_deployment(ns).items}
    api.close()
    return out


def break_image(ns: str, name: str) -> str:
    """A harmful write the gateway permits: a rollout to an image that cannot run. The rolling update keeps the Ready
    pod until its replacement is Ready (never), so the harm is a failing new pod, and the undo restores it all."""
    return f"kubectl -n {ns} set image deployment/{name} {name}={bad_image(name)}"
