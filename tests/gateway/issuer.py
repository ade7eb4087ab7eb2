"""A test identity provider: a signing key, its JWKS, and tokens with chosen claims."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ISSUER = "https://id.test.example"
AUDIENCE = "docs-api"


class Issuer:
    def __init__(self, alg: str = "EdDSA", kid: str = "k1") -> None:
        self.alg = alg
        self.kid = kid
        self.private: Any
        if alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif alg == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
            jwk = jwt.algorithms.OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            raise ValueError(alg)
        self.jwk: dict[str, Any] = {**jwk, "kid": kid, "use": "sig", "alg": alg}

    def token(
        self, *, exp_in: float = 300, headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "org_id": "acme",
            "iat": now,
            "exp": now + int(exp_in),
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload, self.private, algorithm=self.alg, headers={"kid": self.kid, **(headers or {})}
        )


def jwks(*issuers: Issuer) -> dict[str, Any]:
    return {"keys": [i.jwk for i in issuers]}


def write_jwks(path: Path, *issuers: Issuer) -> Path:
    path.write_text(json.dumps(jwks(*issuers)))
    return path


GATEWAY_YAML = """
identity:
  jwt:
    issuer: {issuer}
    audience: {audience}
    jwks_file: {jwks}
    tenant_claim: org_id
    subject_claim: sub
    subject_type: user
    leeway_s: 5
routes:
  - method: GET
    path: /healthz
    public: true
  - method: [GET, HEAD]
    path: /v1/docs/{{id}}
    resource: "document:{{id}}"
    action: view
  - method: PUT
    path: /v1/docs/{{id}}
    resource: "document:{{id}}"
    action: edit
  - method: GET
    path: /v1/files/{{rest...}}
    resource: "document:{{rest}}"
    action: view
unmatched: deny
upstream_headers:
  x-authz-subject: "{{subject}}"
  x-authz-tenant: "{{tenant}}"
  x-authz-decision-id: "{{decision_id}}"
"""


def gateway_yaml(jwks_file: Path) -> str:
    return GATEWAY_YAML.format(issuer=ISSUER, audience=AUDIENCE, jwks=jwks_file)
