"""``free_port`` keeps out of the kernel's ephemeral range (outgoing connections take ports there between the check
and a server's bind), skips ports something listens on, and falls back to the kernel's choice."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stratus import localinfra
from stratus.localinfra import LOW_PORT, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_bindable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = tmp_path / "range"
    proc.write_text("32768\t60999\n")
    monkeypatch.setattr(localinfra, "EPHEMERAL_RANGE", proc)
    for _ in range(20):
        port = free_port()
        assert LOW_PORT <= port < 32768
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_something_listens_on_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        proc = tmp_path / "range"
        # A range whose only non-ephemeral ports are the taken one and a thousand above it.
        proc.write_text(f"{taken + 1000}\t60999\n")
        monkeypatch.setattr(localinfra, "LOW_PORT", taken)
        monkeypatch.setattr(localinfra, "EPHEMERAL_RANGE", proc)
        assert all(free_port() != taken for _ in range(50))


def test_without_room_below_the_range_the_kernel_chooses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = tmp_path / "range"
    proc.write_text(f"{LOW_PORT + 10}\t60999\n")
    monkeypatch.setattr(localinfra, "EPHEMERAL_RANGE", proc)
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
