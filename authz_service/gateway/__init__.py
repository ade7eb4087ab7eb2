"""The API-gateway adapter's policy: HTTP request -> (tenant, subject, action, resource).

No gRPC here: `api/envoy.py` converts Envoy's `CheckRequest` into an `HttpRequest`, hands
it to `Gateway.handle` with a function that runs the normal Check pipeline, and converts
the `Reply` back.

    config       the YAML format, validated at load (`load_gateway_config`)
    routes       path patterns (`/v1/docs/{id}`, `/v1/files/{rest...}`) and templates
    escapes      paths the upstream may decode into another one (`%2F`), refused
    tokens       JWT verification against a JWKS file or URL (PyJWT)
    identity     principal from a verified JWT or from trusted headers
    handler      escapes -> route -> identity -> check -> reply; fails closed
"""

from __future__ import annotations

from authz_service.gateway.config import GatewayConfig, load_gateway_config, parse_gateway_config
from authz_service.gateway.handler import CheckFn, Gateway, HttpRequest, Reply

__all__ = [
    "CheckFn",
    "Gateway",
    "GatewayConfig",
    "HttpRequest",
    "Reply",
    "load_gateway_config",
    "parse_gateway_config",
]
