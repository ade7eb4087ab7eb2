"""The console's pages, in navigation order. Adding a page: write its module (a `PAGE`
value, console/page.py), add it here, and add its template; docs/console.md shows how."""

from __future__ import annotations

from authz_service.console.page import Page
from authz_service.console.pages import audit, playground, tenant_admin, why

__all__ = ["PAGES"]

PAGES: tuple[Page, ...] = (playground.PAGE, why.PAGE, tenant_admin.PAGE, audit.PAGE)
