"""The web console's calls name the browser they are made for.

The console (authz_service/console/) makes every call over one private Unix socket, so
gRPC reports one peer, `unix:`, for all its users: the failure backoff per peer
(api/limits.py) would count every console user's failures together, and one user whose
key was revoked could hold off everyone else's calls. So each console call carries the
browser's address (`authz-console-peer`, spelt as `http_peer` spells it) and the proof
that this process's console sent it (`authz-console-proof`: a random secret the App makes
at start and gives only to its console and its AuthInterceptor). The interceptor counts
the call against that address only with the proof; a call without it is counted against
its connection's peer, as any other. A `unix:` peer proves nothing: a deployment may
serve other clients on a Unix socket too.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from typing import Any

__all__ = ["PEER", "PROOF", "new_secret", "relay_metadata", "relayed_peer"]

PEER = "authz-console-peer"
PROOF = "authz-console-proof"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def relay_metadata(peer: str, secret: str) -> tuple[tuple[str, str], ...]:
    """What a console call carries to be counted against `peer`."""
    return ((PEER, peer), (PROOF, secret))


def relayed_peer(metadata: Iterable[tuple[str, Any]] | None, secret: str | None) -> str | None:
    """The browser's address a call relays, if it proves it came from this process's
    console (`secret`); None otherwise, and for a relay given twice, which would leave
    the choice of address to whoever added the second."""
    if secret is None:
        return None
    peers = [v for k, v in metadata or () if k == PEER]
    proofs = [v for k, v in metadata or () if k == PROOF]
    if len(peers) != 1 or len(proofs) != 1:
        return None
    peer, proof = peers[0], proofs[0]
    if not isinstance(peer, str) or not isinstance(proof, str):
        return None
    if not hmac.compare_digest(proof.encode(), secret.encode()):
        return None
    return peer
