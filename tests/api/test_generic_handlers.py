"""The service's methods are served through generic handlers only (api/server.py,
`GenericOnly`): grpc.aio waits on a pending request per registered method for every
call, so registering the service's methods costs every call. tests/api/test_auth.py
calls every method the server lists by reflection, so each is still found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import grpc.aio._server
import pytest

from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, Api


async def test_the_server_registers_no_method_and_answers_through_generic_handlers(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[str] = []
    server_class: Any = grpc.aio._server.Server
    original = server_class.add_registered_method_handlers

    def spy(self: Any, service: str, handlers: dict[str, Any]) -> None:
        registered.append(service)
        original(self, service, handlers)

    monkeypatch.setattr(server_class, "add_registered_method_handlers", spy)
    app = await start_app(server_settings(pg_dsn, tmp_path))
    try:
        assert registered == []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            await api.touch("acme", "document:d#viewer@user:u")
            reply = await api.check("acme", "document:d", "view", "user:u", full=True)
            assert reply.decision == ALLOWED
    finally:
        await app.stop(grace=1.0)
