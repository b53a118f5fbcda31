"""Fixtures shared by unit tests."""

from collections.abc import Iterator

import pytest

from tests.support.fake_kube import FakeKube, homepage_world


@pytest.fixture(scope="module")
def fake_kube() -> Iterator[FakeKube]:
    """A fake Kubernetes API serving the homepage world, one per test module."""
    fake = homepage_world()
    yield fake
    fake.stop()
