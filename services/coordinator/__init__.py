"""The coordinator service: owns each incident's state machine, the A-Lock and the commit/abort decisions."""
