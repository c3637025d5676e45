"""The web console in a real headless Chromium, on the whole system in ``approve`` mode (the arena, real NATS and
Redis, the six services and the console as processes).

A human's path through the page: open the console, give it the token, see the incident and its pending plan (the
diff of each write), click the incident to follow its live timeline, click "approve", and watch the incident
resolve in the page. What the click did is checked on the bus and on the arena, not in the page: the decision is
recorded (``approval_decided`` by the console), nothing was written before it, and the approved plan, exactly,
committed under TNR.

The browser is Debian's chromium (``/usr/bin/chromium``, or ``STRATUS_TEST_CHROMIUM``) driven by Playwright; the
session fixture installs it with ``scripts/install-chromium.sh`` when it is missing, and the test fails, saying why,
when it cannot. Playwright's own browser download is never used.

``STRATUS_CONSOLE_SCREENSHOTS=docs/console`` also saves the page's screenshots there (``make console-screenshots``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, async_playwright, expect

from arena.server import ArenaServer
from stratus.actions import parse_action
from stratus.bus import Bus
from stratus.localinfra import LocalServer, free_port
from stratus.supervisor import Supervisor
from tests.e2e.harness import Timeline, baseline, running_system
from tests.e2e.shop import deploy_shop, replicas, scale

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install-chromium.sh"
TOKEN = "e2e-console-token"
# Flags for a closed network and a root user (no sandbox): no background fetches, no first-run or sync, no QUIC.
# The page reads the whole event stream every 5 s: after a long test session that takes a while.
LIST_TIMEOUT_MS = 30_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed with scripts/install-chromium.sh when missing (apt-get, as root)."""
    path = os.environ.get("STRATUS_TEST_CHROMIUM") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        done = subprocess.run(
            ["bash", str(INSTALL)], env={**os.environ, "CHROMIUM": path}, capture_output=True, text=True, timeout=900
        )
        if done.returncode != 0 or not os.access(path, os.X_OK):
            pytest.fail(
                f"the console's browser test needs Chromium at {path} and {INSTALL.name} could not install it "
                f"(exit {done.returncode}):\n{done.stdout[-1500:]}{done.stderr[-1500:]}",
                pytrace=False,
            )
    return path


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    # Playwright gives each launch a new, empty --user-data-dir of its own.
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    """Where the test saves the page's screenshots; copied to ``STRATUS_CONSOLE_SCREENSHOTS`` when that is set."""
    out = tmp_path / "screenshots"
    out.mkdir()
    yield out
    keep = os.environ.get("STRATUS_CONSOLE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for png in sorted(out.glob("*.png")):
            # A page of text needs few colours: a 32-colour palette keeps the files small.
            with Image.open(png) as shot:
                shot.convert("RGB").quantize(colors=32).save(Path(keep) / png.name, optimize=True)


def writes(arena: ArenaServer, ns: str, since: int) -> list[str]:
    """Requests after ``since`` that could change objects of ``ns`` (not dry runs)."""
    return [
        f"{r.method} {r.path}"
        for r in list(arena.api.requests)[since:]
        if r.is_write and f"/namespaces/{ns}/" in r.path
    ]


def action_of(event: dict[str, Any]) -> tuple[str, str, str, str]:
    a = parse_action(event["action"])
    params = {k: v for k, v in a.params.items() if k != "pre_image"}
    return a.verb, a.kind or "", getattr(a, "name", ""), json.dumps(params, sort_keys=True)


async def wait_serving(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the console did not answer at {url} within {timeout}s")
            await asyncio.sleep(0.2)


async def shoot(page: Page, out: Path, name: str) -> None:
    png = await page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, f"screenshot {name} is not a rendered page"


async def test_a_human_approves_a_plan_in_the_browser_and_watches_the_incident_resolve(
    browser: Browser,  # first: without a browser, fail before the arena starts
    shop_arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    shots: Path,
    uid: str,
) -> None:
    arena, kubeconfig = shop_arena
    ns = f"shop-{uid[:6]}"
    deploy_shop(kubeconfig, ns)
    timeline = await Timeline(bus, ns).start()
    port = free_port()
    console_url = f"http://127.0.0.1:{port}/"
    lines: list[str] = []
    console = Supervisor(
        nats_server.url,
        redis_server.url,
        services=("console",),
        env={"STRATUS_CONSOLE_TOKEN": TOKEN, "STRATUS_CONSOLE_APPROVALS": "true", "STRATUS_PORT": str(port)},
        echo=lines.append,
    )
    log = Path("var/e2e") / f"console-browser-{uid}.log"
    console.start_services()
    try:
        with running_system(nats_server.url, redis_server.url, kubeconfig, ns, f"t{uid}", log, STRATUS_MODE="approve"):
            await wait_serving(console_url)
            scale(kubeconfig, ns, "web", 0)
            since = len(arena.api.requests)
            asked = (await timeline.wait_for("approval_requested", timeout=90))[0]
            incident, tx = asked["incident_id"], asked["tx_id"]

            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(console_url)
            await expect(page).to_have_title("Stratus console")
            await page.fill("#token", TOKEN)
            await page.click("#save")
            await expect(page.locator("#status")).to_have_text("connected", timeout=LIST_TIMEOUT_MS)

            # The incident, waiting for a human, and its pending plan with approve and deny.
            listed = page.locator(f'#incidents tr[data-incident="{incident}"]')
            await expect(listed).to_contain_text("awaiting_approval", timeout=LIST_TIMEOUT_MS)
            pending = page.locator("#approvals tbody tr", has_text=incident)
            await expect(pending).to_contain_text(tx, timeout=LIST_TIMEOUT_MS)
            approve = pending.locator('button[data-verdict="approve"]')
            await expect(approve).to_be_visible()
            await expect(pending.locator('button[data-verdict="deny"]')).to_be_visible()
            await shoot(page, shots, "console-incidents")

            # Its live timeline: the plan's diff and undo are shown before anyone decides.
            await listed.click()
            await expect(page.locator("#timeline-title")).to_have_text(f"Timeline of {incident}")
            request = page.locator('#timeline tr[data-kind="approval_requested"]')
            await expect(request).to_contain_text("waits for approval")
            await expect(request.locator("pre")).to_contain_text("scale Deployment/web")
            await expect(request.locator("pre")).to_contain_text("+  replicas: 1")
            await shoot(page, shots, "console-approval-pending")
            assert writes(arena, ns, since) == [], "a write reached the API server before the approval"

            await approve.click()
            await expect(page.locator("#decision")).to_have_text(f"approve {tx}: HTTP 200", timeout=LIST_TIMEOUT_MS)

            # The page follows the incident to its end over server-sent events.
            closed_row = page.locator('#timeline tr[data-kind="incident_closed"]')
            await expect(closed_row).to_contain_text("closed: resolved", timeout=60_000)
            await expect(page.locator('#timeline tr[data-kind="approval_decided"]')).to_contain_text(
                f"plan of {tx} approved by console"
            )
            await expect(page.locator("#paths")).to_contain_text("visible:")
            await expect(page.locator("#paths")).to_contain_text(f"hidden {tx}:")
            await expect(listed).to_contain_text("resolved", timeout=LIST_TIMEOUT_MS)
            await expect(page.locator("#approvals tbody tr", has_text=incident)).to_have_count(
                0, timeout=LIST_TIMEOUT_MS
            )
            await shoot(page, shots, "console-incident-resolved")
            await page.close()

            # What the click did, on the bus and on the cluster.
            decided = (await timeline.wait_for("approval_decided", timeout=10))[0]
            assert (decided["tx_id"], decided["approved"], decided["by"]) == (tx, True, "console")
            outcome = (await timeline.wait_for("transaction_decided", timeout=10))[0]
            assert outcome["decision"] == "commit" and outcome["tx_id"] == tx
            closed = (await timeline.wait_for("incident_closed", timeout=10))[0]
            assert closed["outcome"] == "resolved"
            executed = [action_of(e) for e in timeline.of("action_executed")]
            assert executed == [action_of(p) for p in asked["actions"]]  # exactly the approved plan
            assert writes(arena, ns, since), "the approved plan wrote nothing"
            assert max(float(m) for m in closed["visible_mu"]) <= baseline(timeline, closed)
            assert replicas(kubeconfig, ns)["web"] == 1
    finally:
        failed = [(name, code) for name, code in console.exited() if code > 0]
        console.stop()
        log.parent.mkdir(parents=True, exist_ok=True)
        log.with_name(f"console-{uid}.log").write_text("\n".join(lines))
        await timeline.stop()
    assert not failed, f"the console exited with an error: {failed}; see {log.with_name(f'console-{uid}.log')}"
    assert {p.name for p in shots.glob("*.png")} == {
        "console-incidents.png",
        "console-approval-pending.png",
        "console-incident-resolved.png",
    }
