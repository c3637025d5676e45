# One image for every Stratus service; the command picks the service:
#   docker run IMAGE python -m services.bridge      (bridge, detector, coordinator, diagnoser, mitigator, undoer)
# The arena (the emulated cluster for tests and benchmarks) is not part of the product image.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/stratus
# Exactly the lock (every package pinned, with hashes), then the project without dependencies.
COPY requirements.lock ./
RUN /opt/stratus/bin/pip install --no-compile --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY stratus ./stratus
COPY services ./services
RUN /opt/stratus/bin/pip install --no-compile --no-deps --no-build-isolation . \
 && /opt/stratus/bin/python -c "import stratus, services.bridge, services.coordinator, services.mitigator"

FROM python:3.11-slim
LABEL org.opencontainers.image.title="stratus" \
      org.opencontainers.image.description="Autonomous SRE for Kubernetes with Transactional No-Regression" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 stratus \
 && useradd --system --uid 10001 --gid stratus --home-dir /home/stratus --create-home stratus
COPY --from=build /opt/stratus /opt/stratus
ENV PATH=/opt/stratus/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STRATUS_METRICS_PORT=9100
USER 10001:10001
WORKDIR /home/stratus
# 9100: /metrics, /healthz, /readyz of every service; 9095: the bridge's Alertmanager webhook.
EXPOSE 9100 9095
# Readiness of whichever service runs (connected to NATS); compose and the chart use it too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('STRATUS_METRICS_PORT', '9100'), timeout=2)"]
# SIGTERM stops a service cleanly (in-flight messages are redelivered to another replica).
STOPSIGNAL SIGTERM
CMD ["stratus", "--help"]
