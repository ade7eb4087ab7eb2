"""CheckBulk's items in their common form, kept as the strings their cache key holds.

A CheckBulk of a page of resources is answered from the decision cache item by item, and
at that rate building a CheckItem (three frozen dataclasses) per item costs more than the
lookup itself. So an item with an object subject and no context travels from the API as
a `PlainItem`, the very strings of its cache key in key order, and becomes a CheckItem
only where one is needed: when it is evaluated (a cache miss) or logged.
"""

from __future__ import annotations

from authz_service.engine import CheckItem
from authz_service.model import EMPTY_CONTEXT, ObjectRef, SubjectRef

__all__ = ["PlainItem", "check_item", "plain_item"]

PlainItem = tuple[str, str, str, str, str, str]
"""(resource type, resource id, permission, subject type, subject id, subject relation):
a CheckItem without context, its parts already validated, in the cache key's order. From
the API the relation is always NO_RELATION (an object subject); `plain_item` keeps a
subject set's relation."""


def check_item(item: CheckItem | PlainItem) -> CheckItem:
    if isinstance(item, CheckItem):
        return item
    rtype, rid, permission, stype, sid, relation = item
    return CheckItem(
        ObjectRef(rtype, rid), permission, SubjectRef(stype, sid, relation), EMPTY_CONTEXT
    )


def plain_item(item: CheckItem | PlainItem) -> CheckItem | PlainItem:
    """`item` as its strings when it has no context: a tuple of strings is left
    untracked by the cycle collector, a CheckItem (three dataclasses) never is."""
    if isinstance(item, CheckItem) and not item.context:
        resource, subject = item.resource, item.subject
        return (
            resource.type,
            resource.id,
            item.permission,
            subject.type,
            subject.id,
            subject.relation,
        )
    return item
