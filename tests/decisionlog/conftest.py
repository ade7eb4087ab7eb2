"""Fixtures for decision log tests."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz_service.decisionlog import DecisionLogConfig, generate_keypair, load_public_key


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")


@pytest.fixture
def public_key(keys: tuple[Path, Path]) -> Ed25519PublicKey:
    return load_public_key(keys[1])


@pytest.fixture
def config(tmp_path: Path, keys: tuple[Path, Path]) -> DecisionLogConfig:
    return DecisionLogConfig(root=tmp_path / "log", signing_key_path=keys[0])


@pytest.fixture(autouse=True)
async def _fail_on_loop_errors() -> AsyncIterator[None]:
    """Unhandled exceptions in tasks or futures fail the test instead of being logged."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    yield
    gc.collect()  # "exception was never retrieved" is reported when a future is collected
    assert not errors
