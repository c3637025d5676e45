"""``stratus bench --suite memory``: failure memory (incident memory and agent-step failure detection) measured on a
synthetic dataset made here, against a plain MiniLM embedding and string heuristics."""
