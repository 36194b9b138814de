"""The tests' PostgreSQL server: the one CI started (its URL in ``URL_ENV``), or else a
throw-away one per test session from :mod:`tools.postgres_server`."""

from __future__ import annotations

from tools.postgres_server import start, stop

URL_ENV = "ATTRIBUTION_TEST_POSTGRES_URL"

__all__ = ["URL_ENV", "start", "stop"]
