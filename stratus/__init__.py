"""Stratus: autonomous SRE for Kubernetes with Transactional No-Regression."""

__version__ = "0.1.0"
