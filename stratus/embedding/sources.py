"""Which metrics the embedding reads: presets of PromQL queries, one series per service each.

Every preset has the kube-state-metrics signals (restarts, pods not Ready, containers waiting, unavailable replicas)
and the cAdvisor ones (CPU, CPU throttling, memory), which a Kubernetes cluster with the usual monitoring stack
exposes under these names. The request signals (rate, errors, latency) depend on how the applications are
instrumented: ``otel`` reads the OpenTelemetry Collector's span metrics (``calls_total``, ``duration_*``), ``arena``
the arena's own (``arena_requests_total``, ``arena_request_duration_seconds``). ``STRATUS_EMBEDDING_METRIC_QUERIES``
replaces a preset entirely.
"""

from __future__ import annotations

from stratus.embedding.telemetry import MetricQuery

_NS = 'namespace="$scope"'


def kube_queries() -> list[MetricQuery]:
    return [
        MetricQuery(
            name="restarts",
            query=f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{_NS}}}[$rate]))",
            label="pod",
            label_is_pod=True,
        ),
        MetricQuery(
            name="not_ready",
            query=f'sum by (pod) (kube_pod_status_ready{{{_NS},condition!="true"}})',
            label="pod",
            label_is_pod=True,
        ),
        MetricQuery(
            name="waiting",
            query=f"sum by (pod) (kube_pod_container_status_waiting{{{_NS}}})",
            label="pod",
            label_is_pod=True,
        ),
        MetricQuery(
            name="unavailable",
            query=f"sum by (deployment) (kube_deployment_status_replicas_unavailable{{{_NS}}})",
            label="deployment",
        ),
        MetricQuery(
            name="cpu",
            query=f'sum by (pod) (rate(container_cpu_usage_seconds_total{{{_NS},container!=""}}[$rate]))',
            label="pod",
            label_is_pod=True,
        ),
        MetricQuery(
            name="cpu_throttled",
            query=(
                f"sum by (pod) (rate(container_cpu_cfs_throttled_periods_total{{{_NS}}}[$rate])) / "
                f"sum by (pod) (rate(container_cpu_cfs_periods_total{{{_NS}}}[$rate]))"
            ),
            label="pod",
            label_is_pod=True,
        ),
        MetricQuery(
            name="memory",
            query=f'sum by (pod) (container_memory_working_set_bytes{{{_NS},container!=""}})',
            label="pod",
            label_is_pod=True,
        ),
    ]


def _red(total: str, duration: str, label: str, error: str) -> list[MetricQuery]:
    sel = _NS
    return [
        MetricQuery(name="requests", query=f"sum by ({label}) (rate({total}{{{sel}}}[$rate]))", label=label),
        MetricQuery(name="errors", query=f"sum by ({label}) (rate({total}{{{sel},{error}}}[$rate]))", label=label),
        MetricQuery(
            name="latency_mean",
            query=(
                f"sum by ({label}) (rate({duration}_sum{{{sel}}}[$rate])) / "
                f"sum by ({label}) (rate({duration}_count{{{sel}}}[$rate]))"
            ),
            label=label,
        ),
        MetricQuery(
            name="latency_p95",
            query=f"histogram_quantile(0.95, sum by ({label}, le) (rate({duration}_bucket{{{sel}}}[$rate])))",
            label=label,
        ),
    ]


def arena_queries() -> list[MetricQuery]:
    return (
        _red("arena_requests_total", "arena_request_duration_seconds", "service", 'code=~"5..|ERROR"') + kube_queries()
    )


def otel_queries() -> list[MetricQuery]:
    return (
        _red("calls_total", "duration_milliseconds", "service_name", 'status_code="STATUS_CODE_ERROR"') + kube_queries()
    )


PRESETS = {"arena": arena_queries, "otel": otel_queries, "kube": kube_queries}
