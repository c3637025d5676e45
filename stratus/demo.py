"""``make demo``: the main job on the embedded default.

Today it brings the whole system up (NATS, Redis, the six services), shows every service healthy over NATS, and stops
it again, leaving no process behind. The incident walk-through on the arena replaces this once the agents land.
"""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console
from rich.table import Table

from stratus.contracts import SERVICES
from stratus.localinfra import start_nats, start_redis
from stratus.supervisor import Supervisor, wait_healthy


def main() -> int:
    console = Console()
    console.rule("[bold]Stratus demo")
    nats, redis = start_nats(), start_redis()
    sup = Supervisor(nats.url, redis.url, echo=lambda line: None)
    try:
        console.print(f"nats-server -js at {nats.url}; redis-server at {redis.url}")
        sup.start_services()
        replies = asyncio.run(wait_healthy(nats.url, timeout=15))
        table = Table("service", "instance", "healthy", "uptime (s)")
        for s in SERVICES:
            for r in replies.get(s, []):
                table.add_row(s, r.instance, "[green]yes[/]" if r.ok else "[red]no[/]", f"{r.uptime_s:.1f}")
        console.print(table)
        healthy = sum(1 for s in SERVICES if any(r.ok for r in replies.get(s, [])))
        console.print(f"[bold]{healthy}/{len(SERVICES)} services healthy[/]")
        return 0 if healthy == len(SERVICES) else 1
    finally:
        sup.stop()
        nats.stop()
        redis.stop()
        console.print("stopped: no process left behind")


if __name__ == "__main__":
    sys.exit(main())
