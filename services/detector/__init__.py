"""The detector service: turns alerts and probe results into incidents."""
