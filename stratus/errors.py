"""The two kinds of failure domain code may raise; the handler edge maps them to JetStream acks.

- ``PermanentError``: retrying is useless (bad input, a refused action). The message is terminated and the reason
  published so a human can read it.
- ``TemporaryError``: try again later (a dependency is down, a lock is held). The message is nak'ed with ``delay``.
"""

from __future__ import annotations


class StratusError(Exception):
    """Base of every error Stratus raises on purpose."""


class PermanentError(StratusError):
    pass


class TemporaryError(StratusError):
    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class NotImplementedYet(PermanentError):
    """A handler whose behaviour a later issue provides; it refuses work loudly instead of dropping it."""

    def __init__(self, service: str, what: str) -> None:
        super().__init__(f"{service}: {what} is not implemented yet; the request was rejected, not processed")
