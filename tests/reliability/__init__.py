"""Reliability and security scenarios: real processes, real files, real signals (issue 5)."""
