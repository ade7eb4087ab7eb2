"""Shared pieces of the service-account tests: a schema naming `serviceaccount`, and
request builders for delegated checks."""

from __future__ import annotations

from typing import Any

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from tests.api.helpers import obj, subj

SCHEMA = """
definition user {}
definition serviceaccount {}
definition folder {
    relation parent: folder
    relation viewer: user | serviceaccount
    inherit parent
    permission view = viewer + parent->view
}
definition document {
    relation folder: folder
    relation viewer: user | serviceaccount
    relation editor: user | serviceaccount
    inherit folder
    permission view = viewer + editor + folder->view
    permission edit = editor
    nondelegable permission delete = editor
}
role reader { document.view, folder.view }
"""


def delegated(
    fresh: str, resource: str, permission: str, subject: str, *agents: str, **fields: Any
) -> permissions_pb2.CheckRequest:
    """Check `resource#permission@subject` with `agents` acting for the subject, at least
    as fresh as the write token `fresh` (so the cache may answer)."""
    return permissions_pb2.CheckRequest(
        tenant="acme",
        resource=obj(resource),
        permission=permission,
        subject=subj(subject),
        agents=[subj(a) for a in agents],
        consistency=core_pb2.Consistency(at_least_as_fresh=core_pb2.ConsistencyToken(token=fresh)),
        **fields,
    )
