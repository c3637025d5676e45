"""The bridge service: Alertmanager's webhook in, normalised alerts out on NATS."""
