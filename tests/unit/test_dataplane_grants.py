"""Data-plane grants are bounded by what the application declares (stratus.dataplane): roles are granted or revoked
only as the database's init scripts declare them for that user, so no catalogue operation (nor its undo) grants a
privilege the application never had."""

from __future__ import annotations

from typing import Any

import pytest

from stratus import dataplane
from stratus.dataplane import DataPlaneError, render

INIT = """
db = db.getSiblingDB('admin');
db.createUser({user: 'admin', pwd: 'admin', roles: [{role: 'userAdminAnyDatabase', db: 'admin'}]});
db.grantRolesToUser('admin', [{role: 'readWrite', db: 'geo-db'}]);
db.createUser({user: 'reader', pwd: 'r', roles: [{role: 'read', db: 'geo-db'}]});
"""


def pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "mongodb-geo-1", "namespace": "shop"},
        "spec": {
            "volumes": [{"name": "init", "configMap": {"name": "init-js"}}],
            "containers": [
                {"name": "mongo", "volumeMounts": [{"name": "init", "mountPath": "/docker-entrypoint-initdb.d/"}]}
            ],
        },
    }


def read(namespace: str, name: str) -> dict[str, Any] | None:
    return {"data": {"init.js": INIT}} if (namespace, name) == ("shop", "init-js") else None


def args(user: str, *roles: tuple[str, str]) -> dict[str, Any]:
    return {"db": "admin", "user": user, "roles": [{"role": r, "db": d} for r, d in roles]}


@pytest.mark.parametrize("operation", ["mongodb.grant_roles", "mongodb.revoke_roles"])
def test_declared_roles_are_granted_and_revoked(operation: str) -> None:
    argv = render(operation, args("admin", ("readWrite", "geo-db")), pod(), pod()["spec"]["containers"][0], read)
    assert "readWrite" in argv[-1] and "geo-db" in argv[-1]
    render(operation, args("admin", ("userAdminAnyDatabase", "admin")), pod(), {}, read)


@pytest.mark.parametrize(
    "roles",
    [
        [("root", "admin")],
        [("clusterAdmin", "admin")],
        [("readWrite", "geo-db"), ("userAdminAnyDatabase", "admin"), ("dbOwner", "geo-db")],  # one extra among declared
        [("readWrite", "rate-db")],  # a declared role on another database
        [("read", "geo-db")],  # another user's role
    ],
)
@pytest.mark.parametrize("operation", ["mongodb.grant_roles", "mongodb.revoke_roles"])
def test_roles_the_application_never_declared_are_refused(operation: str, roles: list[tuple[str, str]]) -> None:
    with pytest.raises(DataPlaneError, match="declare no role") as info:
        render(operation, args("admin", *roles), pod(), {}, read)
    assert "userAdminAnyDatabase@admin" in str(info.value)  # says what is declared


def test_an_undeclared_user_or_pod_without_init_scripts_gets_nothing() -> None:
    with pytest.raises(DataPlaneError, match="declare no user 'ghost'"):
        render("mongodb.grant_roles", args("ghost", ("read", "geo-db")), pod(), {}, read)
    bare = {"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": [{"name": "c"}]}}
    with pytest.raises(DataPlaneError, match="declare no user"):
        render("mongodb.grant_roles", args("admin", ("readWrite", "geo-db")), bare, {}, read)


def test_the_inverse_of_a_bounded_revoke_is_a_bounded_grant() -> None:
    inverse = dataplane.inverse_of("mongodb.revoke_roles", args("admin", ("readWrite", "geo-db")))
    assert inverse is not None and inverse[0] == "mongodb.grant_roles"
    render(inverse[0], inverse[1], pod(), {}, read)
