"""The credential scrubber (stratus.scrub): the corpus in tests/data/credentials.yaml (must-scrub cases and look-alikes
that must stay), properties under hypothesis, structures (events, argv, Secrets) and log records."""

from __future__ import annotations

import io
import json
import logging
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stratus.actions import Patch, Scale, SetEnv
from stratus.contracts import DeadLetter
from stratus.observability import log_handler
from stratus.scrub import (
    LAST_APPLIED,
    MASK,
    ScrubFilter,
    is_secret_key,
    redact_secret,
    scrub_argv,
    scrub_json,
    scrub_model,
    scrub_obj,
    scrub_text,
)

CORPUS = yaml.safe_load((Path(__file__).parents[1] / "data" / "credentials.yaml").read_text())


@pytest.mark.parametrize("case", CORPUS["scrub"], ids=lambda c: c["text"][:40])
def test_must_scrub(case: dict[str, Any]) -> None:
    out = scrub_text(case["text"])
    for secret in case["secrets"]:
        assert str(secret) not in out, out
    assert scrub_text(out) == out, "scrubbing is idempotent"


@pytest.mark.parametrize("text", CORPUS["keep"], ids=lambda t: t[:40])
def test_look_alikes_stay(text: str) -> None:
    assert scrub_text(text) == text


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS["scrub"]) >= 50 and len(CORPUS["keep"]) >= 40


# --- properties ---------------------------------------------------------------------------------------------------

SECRET = st.text(alphabet=string.ascii_letters + string.digits + "!%^*+~", min_size=8, max_size=40).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s)
)
NAME_WORDS = st.sampled_from(["db", "mongo", "root", "app", "redis", "smtp", "admin", "svc", "prod"])
SECRET_WORDS = st.sampled_from(["PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "ACCESS_KEY", "PWD", "AUTH"])
TEMPLATES = [
    "{key}={secret}",
    "export {key}='{secret}'",
    '{{"name": "{key}", "value": "{secret}"}}',
    "- name: {key}\n  value: {secret}",
    '"{key_lower}": "{secret}"',
    "mongodb://{user}:{secret}@mongo.{user}.svc:27017/admin",
    "postgresql://{user}:{secret}@db:5432/{user}",
    "mongo admin -u {user} -p {secret} --eval 'db.stats()'",
    "mongosh --password {secret} --username {user}",
    "mysql -u{user} -p{secret} shop",
    "redis-cli -a {secret} ping",
    "curl -u {user}:{secret} https://x.example.com",
    "Authorization: Bearer {secret}",
    "tool --client-secret={secret} --verbose",
]


@settings(max_examples=300, deadline=None)
@given(
    template=st.sampled_from(TEMPLATES),
    secret=SECRET,
    prefix=st.lists(NAME_WORDS, max_size=3),
    word=SECRET_WORDS,
    user=NAME_WORDS,
)
def test_generated_credentials_are_scrubbed(
    template: str, secret: str, prefix: list[str], word: str, user: str
) -> None:
    key = "_".join([*(p.upper() for p in prefix), word])
    text = template.format(key=key, key_lower=key.lower(), secret=secret, user=user)
    out = scrub_text(text)
    assert secret not in out, (text, out)
    assert scrub_text(out) == out


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["", "mongo ", "sh -c 'mysql ", "redis-cli -a ", "curl -u ", "-u x -p "]), st.text(max_size=300))
def test_scrubbing_any_text_is_idempotent_and_total(prefix: str, text: str) -> None:
    once = scrub_text(prefix + text)
    assert "withheld" not in once, "the scrubber failed on this input"
    assert scrub_text(once) == once


@pytest.mark.parametrize(
    "text", ['mongo a"b c"d', "mongo 'x \"a b\" y'", "sh -c 'mongo -p \"a b\"c'", "mongo " + "'a \"b " * 50]
)
def test_nested_quotes_terminate(text: str) -> None:
    out = scrub_text(text)
    assert "withheld" not in out and scrub_text(out) == out


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_lowercase + string.digits + " ./-\n", max_size=200))
def test_plain_text_without_keys_or_flags_is_unchanged(text: str) -> None:
    # no '=', ':', '@' or flags: nothing here can carry a credential by structure
    if " -" in text or text.startswith("-"):
        return
    assert scrub_text(text) == text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_scrub_obj_keeps_shapes_and_is_idempotent(value: Any) -> None:
    once = scrub_obj(value)
    assert scrub_obj(once) == once
    assert type(once) is type(value)
    json.dumps(once)


# --- keys and structures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("MONGO_INITDB_ROOT_PASSWORD", True),
        ("clientSecret", True),
        ("apiKey", True),
        ("aws_secret_access_key", True),
        ("PGPASSWORD", True),
        ("pwd", True),
        ("PASSWORD_FILE", False),
        ("secretKeyRef", False),
        ("secretName", False),
        ("token_ttl", False),
        ("accessKeyId", False),
        ("key", False),
        ("author", False),
        ("authSource", False),
        ("tokenizer", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_argv_and_typed_actions() -> None:
    argv = ["mongo", "admin", "-u", "root", "-p", "r00tpw", "--eval", "db.createUser({user: 'u', pwd: 'pw9x'})"]
    out = scrub_argv(argv)
    assert "r00tpw" not in out and not any("pw9x" in a for a in out) and out[:5] == argv[:5]
    env = SetEnv(kind="Deployment", namespace="s", name="w", env={"DB_PASSWORD": "x1"})
    clean_env = scrub_model(env)
    assert isinstance(clean_env, SetEnv) and clean_env.env == {"DB_PASSWORD": MASK}
    ops = [{"op": "replace", "path": "/data/db_password", "value": "x1"}, {"op": "add", "path": "/a", "value": "b"}]
    assert scrub_obj(ops) == [{"op": "replace", "path": "/data/db_password", "value": MASK}, ops[1]]
    patch = scrub_model(Patch(namespace="s", kind="ConfigMap", name="c", patch_type="json", patch=ops))
    assert isinstance(patch, Patch) and "x1" not in patch.model_dump_json()
    scale = Scale(kind="Deployment", namespace="s", name="w", replicas=2)
    assert scrub_model(scale) is scale


def test_dead_letters_and_json_payloads() -> None:
    payload = json.dumps({"lease": {"token": 7}, "command": ["redis-cli", "-a", "foobared99", "ping"]})
    record = DeadLetter(service="mitigator", subject="s", cause="rejected", reason="DB_PASSWORD=p4ss", payload=payload)
    clean = scrub_model(record)
    assert "foobared99" not in clean.payload and "p4ss" not in clean.reason
    assert json.loads(clean.payload)["lease"]["token"] == 7  # numbers under credential-like keys are not credentials
    assert scrub_json("not json, password=abc12345") == "not json, password=***"
    deep = "[" * 100_000 + '"password=abc12345"' + "]" * 100_000  # deeper than json.loads recurses
    assert "abc12345" not in scrub_json(deep)
    letter = DeadLetter(service="bridge", subject="s", cause="malformed", reason="bad", payload=deep)
    assert "abc12345" not in scrub_model(letter).payload


def test_secrets_are_redacted_with_their_last_applied_annotation() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "annotations": {LAST_APPLIED: '{"data":{"pw":"aHVudGVyMg=="}}', "team": "a"}},
        "data": {"pw": "aHVudGVyMg=="},
        "stringData": {"user": "root"},
    }
    out = redact_secret(secret)
    assert out["data"] == {"pw": MASK} and out["stringData"] == {"user": MASK}
    assert out["metadata"]["annotations"] == {LAST_APPLIED: MASK, "team": "a"}
    assert secret["data"]["pw"] == "aHVudGVyMg==", "the input is not modified"
    assert redact_secret({"kind": "ConfigMap", "data": {"a": "b"}})["data"] == {"a": "b"}


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_records_and_tracebacks_are_scrubbed(fmt: str) -> None:
    stream = io.StringIO()
    handler = log_handler(fmt, stream)
    handler.addFilter(ScrubFilter())
    logger = logging.getLogger(f"test-scrub-{fmt}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connecting to %s", "mongodb://root:l0gPw1@mongo:27017")
        try:
            raise ValueError("auth failed for -p with password=tbPw2x")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "l0gPw1" not in text and "tbPw2x" not in text
    assert "mongodb://root:***@mongo" in text and "ValueError" in text
