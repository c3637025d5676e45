"""The undoer service."""
