"""The gRPC tests here run the real server over a fresh PostgreSQL database per test,
with the fixtures of tests/api."""

from tests.api.conftest import app, channel, pg_dsn

__all__ = ["app", "channel", "pg_dsn"]
