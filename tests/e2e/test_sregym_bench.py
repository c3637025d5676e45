"""``stratus bench --suite sregym --policy scripted`` end to end on three SREGym scenarios whose documented fixes need
what the scripted plan gained: a typed delete (the ResourceQuota), a restore as a typed replace (the ConfigMap), and
writes on Nodes that the namespace lease refuses, so attempt 2 must run them under the widened cluster lease; two
on the Astronomy Shop whose faults live in data-store state and in env resolved at container start; and a database
user recreated by the scenario's typed data-plane operation (a typed exec, never free argv)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arena.bench.record import BenchRecord

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCENARIOS = [
    "namespace_memory_limit",
    "missing_configmap_hotel_reservation",
    "taint_no_toleration_social_network",
    # the Astronomy Shop's data stores: a run-time Valkey password, a rotated Secret resolved at container start
    "valkey_auth_disruption",
    "secret_rotation_stale_env_credentials_astronomy_shop",
    # a fix in the database itself: the scenario's typed data-plane operation, through the gateway's catalogue
    "storage_user_unregistered-1",
]


def test_scripted_plans_restore_sregym_scenarios(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    cmd = [str(Path(sys.executable).parent / "stratus"), "bench", "--suite", "sregym", "--policy", "scripted"]
    cmd += ["--out", str(out), "--timeout", "90"]
    for pid in SCENARIOS:
        cmd += ["--only", pid]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=480)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = BenchRecord.model_validate_json((out / "bench.json").read_text())
    assert sorted(r.scenario for r in record.runs) == sorted(SCENARIOS)
    for r in record.runs:
        assert r.error is None, r.error
        assert r.success, (r.scenario, r.oracle_reasons)
    taint = next(r for r in record.runs if r.scenario == "taint_no_toleration_social_network")
    assert len(taint.attempts) >= 2, "the Node writes need attempt 2 under the cluster lease"
    user = next(r for r in record.runs if r.scenario == "storage_user_unregistered-1")
    assert any(a.startswith("exec Pod/mongodb-geo") for a in user.attempts[0].actions), user.attempts
