"""``ArenaServer``: the arena's API server and controllers on a background thread with their own event loop."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from arena.api.app import ApiApp
from arena.cluster import Cluster
from arena.hooks import Behaviour
from arena.kubeconfig import write_kubeconfig
from arena.timing import Timing

log = logging.getLogger(__name__)


class ArenaServer:
    """Serve an emulated cluster on ``http://host:port`` (``port=0``: a free one).

    >>> with ArenaServer() as arena:
    ...     arena.write_kubeconfig("/tmp/kubeconfig")
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        behaviour: Behaviour | None = None,
        nodes: int | Iterable[dict[str, Any]] = 3,
        timing: Timing | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.cluster = Cluster(behaviour=behaviour, nodes=nodes, timing=timing)
        self.api = ApiApp(self.cluster)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ArenaServer:
        self._thread = threading.Thread(target=self._run, name="arena", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("arena did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"arena failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        runner = web.AppRunner(self.api.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        controllers = asyncio.create_task(self.cluster.run())
        self._ready.set()
        log.info("arena serving on %s", self.url)
        await self._stopped.wait()
        self.api.closing.set()
        self.cluster.store.close_watchers()
        self.cluster.stop()
        await controllers
        await runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, namespace)

    def wait_forever(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> ArenaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
