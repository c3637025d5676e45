"""Failure memory (after EAGER): closed incidents kept on the bus and recalled by similarity.

- ``templates``: log lines to masked templates (drain3);
- ``signature``: an incident's normalised signature, read from a scope snapshot, and signature similarity;
- ``records``: what is kept of an incident (signature, diagnosis, every transaction);
- ``store``: the JetStream key-value bucket that keeps it, bounded, across restarts;
- ``recall``: the nearest memories and which fix may be replayed as attempt 1;
- ``first``: the MemoryFirst mitigation step that replays it, as an ordinary TNR transaction.
"""
