#!/usr/bin/env python3
"""Mint a development JWT for the Envoy example; never use these keys for anything real.

    .venv/bin/python examples/envoy/mint_token.py                  # user alice, tenant demo
    .venv/bin/python examples/envoy/mint_token.py --sub bob --ttl 60

The first run creates an Ed25519 signing key (dev-key.pem) and its public JWKS
(dev-jwks.json, which gateway.yaml points at) next to this script. Prints the token.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = Path(__file__).resolve().parent
KEY = HERE / "dev-key.pem"
JWKS = HERE / "dev-jwks.json"
KID = "dev-1"
ISSUER = "https://dev.authz.local/"
AUDIENCE = "docs-api"


def signing_key() -> Ed25519PrivateKey:
    if KEY.exists():
        loaded = serialization.load_pem_private_key(KEY.read_bytes(), password=None)
        assert isinstance(loaded, Ed25519PrivateKey)
        return loaded
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    KEY.write_bytes(pem)
    KEY.chmod(0o600)
    return key


def write_jwks(key: Ed25519PrivateKey) -> None:
    public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    public.update(kid=KID, use="sig", alg="EdDSA")
    JWKS.write_text(json.dumps({"keys": [public]}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sub", default="alice", help="subject id (default alice)")
    parser.add_argument("--org", default="demo", help="tenant, the `org_id` claim (default demo)")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    args = parser.parse_args()
    key = signing_key()
    write_jwks(key)
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": args.sub,
        "org_id": args.org,
        "iat": now,
        "exp": now + args.ttl,
    }
    print(jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": KID}))


if __name__ == "__main__":
    main()
