"""``stratus bench``: the whole system (NATS, Redis, the six services as processes) against the arena's scenarios,
judged by the scenarios' oracles, reported like the STRATUS paper (JSON, Markdown tables, matplotlib plots)."""
