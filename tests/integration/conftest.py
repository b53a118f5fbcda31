"""Fixtures for tests against the real Prometheus / Alertmanager."""

from tests.support.prometheus import prometheus  # noqa: F401
