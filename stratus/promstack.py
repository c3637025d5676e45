"""Start real Prometheus and Alertmanager processes on free loopback ports with temporary configurations.

The companion of ``stratus.localinfra`` (NATS, Redis) for the tier of tests and demos that needs the real alerting
path: Prometheus scrapes, evaluates the shipped rules, notifies Alertmanager, which posts to the bridge's webhook.
The binaries are Debian's (``/usr/bin/prometheus``, ``/usr/bin/prometheus-alertmanager``, ``promtool``), installed by
``scripts/install-promstack.sh`` (``ensure_installed`` runs it when one is missing).

Timing: with ``scrape_interval``/``evaluation_interval`` of 1s, rules loaded with ``for: 0s`` and ``group_wait`` 1s,
an alert reaches the webhook a few seconds after the metric changes. ``rules_with_for`` rewrites the shipped rules'
``for`` durations so tests use the very rules a cluster runs, only faster.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx
import yaml

from stratus.errors import PermanentError, TemporaryError
from stratus.localinfra import LocalServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_RULES = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"
"""The rules shipped with the project (in a source checkout or an editable install)."""
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-promstack.sh"

BINARIES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager", "promtool": "promtool"}


def binary(name: str) -> str | None:
    """Path of ``prometheus``, ``alertmanager`` or ``promtool`` (Debian names), or None when not installed."""
    exe = BINARIES[name]
    found = shutil.which(exe)
    if found is None and Path("/usr/bin", exe).exists():
        found = str(Path("/usr/bin", exe))
    return found


def missing() -> list[str]:
    return [name for name in BINARIES if binary(name) is None]


INSTALL_LOCK = Path(tempfile.gettempdir()) / "stratus-promstack-install.lock"
"""Held while installing: processes that need the stack at once (the bench's workers) install it once, in turn
(two apt-get runs at the same time fail on dpkg's own lock)."""


def ensure_installed(script: Path = INSTALL_SCRIPT, *, timeout: float = 900.0) -> None:
    """Install Prometheus and Alertmanager with ``script`` when a binary is missing (root + apt-get)."""
    if not missing():
        return
    if not script.exists():
        raise PermanentError(f"{', '.join(missing())} not installed and {script} not found")
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
        if missing():
            _install(script, timeout)


def _install(script: Path, timeout: float) -> None:
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0 or missing():
        raise PermanentError(
            f"could not install {', '.join(missing()) or 'the Prometheus stack'} with {script} "
            f"(exit {result.returncode}):\n{result.stdout[-1500:]}{result.stderr[-1500:]}"
        )


def rules_with_for(source: Path, dest: Path, for_: str | None = "0s") -> Path:
    """Copy a rules file, setting every alerting rule's ``for`` to ``for_`` (None: unchanged)."""
    doc = yaml.safe_load(source.read_text())
    if for_ is not None:
        for group in doc.get("groups", []):
            group.pop("interval", None)
            for rule in group.get("rules", []):
                if "alert" in rule:
                    rule["for"] = for_
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def _wait_ready(server: LocalServer, what: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    url = f"{server.url}/-/ready"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            server.stop()
            raise PermanentError(f"{what} exited with code {server.process.returncode} while starting:\n{tail}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise TemporaryError(f"{what} did not become ready within {timeout:.0f}s (log: {log})")


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_alertmanager(
    webhook_url: str,
    *,
    token: str | None = None,
    group_by: Sequence[str] = ("...",),
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    timeout: float = 30.0,
) -> LocalServer:
    """Alertmanager routing every alert to ``webhook_url`` (with ``send_resolved``, bearer ``token`` when given).

    Started with an empty ``--cluster.listen-address`` so it opens no gossip port.
    """
    exe = binary("alertmanager")
    if exe is None:
        raise PermanentError("prometheus-alertmanager is not installed; run scripts/install-promstack.sh")
    workdir = Path(tempfile.mkdtemp(prefix="stratus-alertmanager-"))
    webhook: dict[str, object] = {"url": webhook_url, "send_resolved": True, "max_alerts": 0}
    if token is not None:
        token_file = workdir / "webhook-token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
    config = {
        "route": {
            "receiver": "stratus",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "stratus", "webhook_configs": [webhook]}],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / "alertmanager.log"
    cmd = [
        exe,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=info",
    ]
    server = LocalServer("alertmanager", f"http://127.0.0.1:{port}", _spawn(cmd, log), workdir, {"log": str(log)})
    _wait_ready(server, "alertmanager", timeout, log)
    return server


def start_prometheus(
    targets: Iterable[str],
    *,
    rule_files: Iterable[Path] = (),
    alertmanager_url: str | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    honor_labels: bool = True,
    timeout: float = 30.0,
) -> LocalServer:
    """Prometheus scraping ``targets`` (``host:port``, path /metrics), evaluating ``rule_files``, alerting
    ``alertmanager_url``. Rule files are copied into the server's temporary directory."""
    exe = binary("prometheus")
    if exe is None:
        raise PermanentError("prometheus is not installed; run scripts/install-promstack.sh")
    workdir = Path(tempfile.mkdtemp(prefix="stratus-prometheus-"))
    copied = []
    for i, rules in enumerate(rule_files):
        dest = workdir / f"rules-{i}-{rules.name}"
        shutil.copyfile(rules, dest)
        copied.append(str(dest))
    config: dict[str, object] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": copied,
        "scrape_configs": [
            {
                "job_name": "stratus-test",
                "honor_labels": honor_labels,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    if alertmanager_url is not None:
        host = alertmanager_url.split("://", 1)[-1].rstrip("/")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / "prometheus.log"
    cmd = [
        exe,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=info",
    ]
    server = LocalServer("prometheus", f"http://127.0.0.1:{port}", _spawn(cmd, log), workdir, {"log": str(log)})
    _wait_ready(server, "prometheus", timeout, log)
    return server
