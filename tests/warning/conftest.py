"""Fixtures of the warning tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from warning_support import World

from services.kit.db import create_sessionmaker


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    yield World(create_sessionmaker(engine))
