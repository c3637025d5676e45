"""Applications as data: Kubernetes manifests (YAML), the image catalogue and the workload mixes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

HERE = Path(__file__).parent


class WorkloadRoute(BaseModel):
    model_config = ConfigDict(frozen=True)
    method: str = Field(description="HTTP method.")
    path: str = Field(description="Request path on the front end.")
    weight: float = Field(description="Share of requests (relative).")


class AppSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str = Field(description="Application name as the CLI takes it.")
    namespace: str = Field(description="Namespace the manifests deploy into.")
    manifest: str = Field(description="File (in arena/apps) with the manifests.")
    label_key: str = Field(description="Pod label that names the service.")
    frontend: str = Field(description="Service the workload targets.")
    frontend_port: int = Field(description="Its port.")
    workload: list[WorkloadRoute] = Field(description="The wrk2 script's request mix.")

    def manifests(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all((HERE / self.manifest).read_text()) if d]


APPS: dict[str, AppSpec] = {
    "hotel-reservation": AppSpec(
        name="hotel-reservation",
        namespace="test-hotel-reservation",
        manifest="hotel-reservation.yaml",
        label_key="io.kompose.service",
        frontend="frontend",
        frontend_port=5000,
        # mixed-workload_type_1.lua
        workload=[
            WorkloadRoute(method="GET", path="/hotels", weight=60),
            WorkloadRoute(method="GET", path="/recommendations", weight=39),
            WorkloadRoute(method="GET", path="/user", weight=0.5),
            WorkloadRoute(method="POST", path="/reservation", weight=0.5),
        ],
    ),
    "social-network": AppSpec(
        name="social-network",
        namespace="test-social-network",
        manifest="social-network.yaml",
        label_key="app",
        frontend="nginx-thrift",
        frontend_port=8080,
        # compose-post.lua
        workload=[WorkloadRoute(method="POST", path="/wrk2-api/post/compose", weight=1)],
    ),
    "astronomy-shop": AppSpec(
        name="astronomy-shop",
        namespace="astronomy-shop",
        manifest="astronomy-shop.yaml",
        label_key="app.kubernetes.io/name",
        frontend="frontend-proxy",
        frontend_port=8080,
        # the demo's locust user (src/load-generator): its tasks and their weights, through frontend-proxy
        workload=[
            WorkloadRoute(method="GET", path="/", weight=1),
            WorkloadRoute(method="GET", path="/api/products/OLJCESPC7Z", weight=10),
            WorkloadRoute(method="GET", path="/api/recommendations?productIds=OLJCESPC7Z", weight=3),
            WorkloadRoute(method="GET", path="/api/data/?contextKeys=telescopes", weight=3),
            WorkloadRoute(method="GET", path="/api/cart", weight=3),
            WorkloadRoute(method="POST", path="/api/cart", weight=2),
            WorkloadRoute(method="POST", path="/api/checkout", weight=2),
        ],
    ),
}


def app_for_namespace(namespace: str) -> AppSpec | None:
    return next((a for a in APPS.values() if a.namespace == namespace), None)
