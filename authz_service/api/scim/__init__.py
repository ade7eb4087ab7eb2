"""SCIM 2.0 over HTTP (RFC 7643/7644), one endpoint per tenant: docs/identity.md."""

from authz_service.api.scim.app import ScimApp
from authz_service.api.scim.server import ScimServer

__all__ = ["ScimApp", "ScimServer"]
