"""Shared fixtures: one real etcd per test module that asks for it."""
from __future__ import annotations

import itertools
from typing import Iterator

import pytest

from etcd_harness import EtcdServer

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test uses."""
    return f"/t{next(_prefixes)}-{request.node.name[:40]}"
