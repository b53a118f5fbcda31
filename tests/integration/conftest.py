"""Fixtures for tests against the real Prometheus / Alertmanager, and an open store."""

from tests.support.memory import store  # noqa: F401
from tests.support.prometheus import prometheus  # noqa: F401
