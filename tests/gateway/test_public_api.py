"""The gateway package's public names are a deliberate list."""

from __future__ import annotations

import ast
from pathlib import Path

from authz_service import gateway


def test_public_names() -> None:
    assert sorted(gateway.__all__) == [
        "CheckFn",
        "Gateway",
        "GatewayConfig",
        "HttpRequest",
        "Reply",
        "load_gateway_config",
        "parse_gateway_config",
    ]
    for name in gateway.__all__:
        assert getattr(gateway, name) is not None


def test_no_grpc_in_the_gateway_package() -> None:
    """Only api/ speaks gRPC; the gateway policy must run (and be tested) without it."""
    root = Path(gateway.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("grpc", "envoy", "authz_service.api")), (path, name)
