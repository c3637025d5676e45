"""The diagnoser service."""
