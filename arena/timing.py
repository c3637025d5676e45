"""The arena's compressed clock: every delay a real cluster takes seconds or minutes for, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Timing:
    tick: float = 0.1
    """Longest the controller loop sleeps when nothing changes (time-driven work: back-offs, probes)."""
    resync: float = 1.0
    """Every controller runs at least this often, even when nothing it watches changed."""
    container_create: float = 0.25
    """ContainerCreating -> the kubelet asks the behaviour to start the container."""
    ready_delay: float = 0.2
    """A started container -> first readiness answer."""
    probe_period: float = 1.0
    """How often readiness, liveness and periodic logs are asked of the behaviour."""
    crash_visible: float = 0.2
    """How long a crashed container shows ``Terminated/Error`` before ``CrashLoopBackOff``."""
    backoff_base: float = 1.0
    """First restart back-off (a real kubelet: 10 s); doubles on each crash."""
    backoff_cap: float = 16.0
    """Back-off ceiling (a real kubelet: 300 s)."""
    backoff_reset: float = 60.0
    """A container running this long resets its back-off (a real kubelet: 10 min)."""
    image_backoff_base: float = 1.0
    image_backoff_cap: float = 16.0
    termination: float = 0.3
    """Graceful pod termination (real: up to terminationGracePeriodSeconds)."""
    reschedule: float = 1.0
    """How often an unschedulable pod is retried."""
    pv_retry: float = 5.0
    """How often an unbound claim's failure is re-reported (the real controller resyncs every 15 s)."""
    progress_deadline_factor: float = 0.05
    """progressDeadlineSeconds is multiplied by this (600 s -> 30 s)."""
    cron_minute: float = 5.0
    """Seconds one minute of a CronJob's schedule lasts (``* * * * *`` fires every 5 s)."""
    max_events: int = 5000
    """Events kept; the oldest are dropped (a real cluster keeps them one hour)."""

    @classmethod
    def fast(cls) -> Timing:
        """Tighter delays for tests."""
        return cls(
            tick=0.05,
            container_create=0.1,
            ready_delay=0.05,
            probe_period=0.5,
            crash_visible=0.1,
            backoff_base=0.5,
            backoff_cap=4.0,
            image_backoff_base=0.5,
            image_backoff_cap=4.0,
            termination=0.1,
            reschedule=0.5,
        )
