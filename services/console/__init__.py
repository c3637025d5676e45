"""The web console: a read-only view of incidents and their live timelines (bearer-authenticated)."""
