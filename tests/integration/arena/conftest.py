"""The arena conformance tests use the fixtures of ``tests/fixtures_arena.py`` (also registered as a plugin by the
root conftest); importing them here keeps this folder runnable on its own."""

from tests.fixtures_arena import arena, arena_kubeconfig, arena_ns, k8s_client, kubectl  # noqa: F401
