"""Fixtures shared by unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.fake_kube import FakeKube


@pytest.fixture(scope="module")
def fake_kube() -> Iterator[FakeKube]:
    """A fake Kubernetes API serving the homepage world, one per test module.

    Imported here, not at the top: the Kubernetes client loads only for tests that use it.
    """
    from tests.support.fake_kube import homepage_world

    fake = homepage_world()
    yield fake
    fake.stop()
