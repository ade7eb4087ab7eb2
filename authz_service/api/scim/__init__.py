"""SCIM 2.0 over HTTP (RFC 7643/7644), one endpoint per tenant: docs/identity.md."""

from authz_service.api.scim.app import ScimApp

__all__ = ["ScimApp"]
