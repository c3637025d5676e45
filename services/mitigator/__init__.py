"""The mitigator service."""
