"""The SCIM listener starts and stops with the app, on memory:// as on PostgreSQL."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx2 as httpx
import pytest

from authz_service.app import App
from tests.api.conftest import server_settings


async def test_it_stops_with_the_app(tmp_path: Path) -> None:
    app = await App.start(server_settings("memory://", tmp_path, scim_listen="127.0.0.1:0"))
    assert app.scim is not None
    await app.store.tenants.create("acme")
    url = f"http://127.0.0.1:{app.scim.port}/scim/v2/acme/Users"
    async with httpx.AsyncClient() as http:
        response = await http.get(url)  # --no-auth in these settings
        assert response.status_code == 200
        assert response.json()["totalResults"] == 0
    await app.stop(grace=1.0)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(url)


async def test_no_listener_unless_configured(tmp_path: Path) -> None:
    app = await App.start(server_settings("memory://", tmp_path))
    try:
        assert app.scim is None
    finally:
        await app.stop(grace=1.0)


async def test_a_taken_port_fails_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="SCIM"):
            await App.start(server_settings("memory://", tmp_path, scim_listen=f"127.0.0.1:{port}"))


async def test_paths_outside_a_tenant_are_404(tmp_path: Path) -> None:
    app = await App.start(server_settings("memory://", tmp_path, scim_listen="127.0.0.1:0"))
    try:
        assert app.scim is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.scim.port}") as http:
            paths = ("/", "/scim/v2/", "/scim/v2/bad%20tenant/Users", "/other/acme/Users")
            for path in (*paths, "/scim/v2/nosuchtenant/Users"):
                response = await http.get(path)
                assert response.status_code == 404, path
                assert response.json()["status"] == "404"
    finally:
        await app.stop(grace=1.0)
