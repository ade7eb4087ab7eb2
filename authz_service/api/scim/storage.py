"""scim2-server's storage interface over `ProvisioningService`.

scim2-server parses, filters, patches and checks ETags; this adapter turns its resources
into the JSON documents the service keeps, and back. Searches are evaluated here, over the
tenant's records of the type, with scim2-models' own filter and sort: a tenant's
directory is read whole per search (documented in docs/identity.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar, cast

from scim2_models import Meta, Resource, ResourceType, ResponseParameters, ScimFilter, SearchRequest
from scim2_server.conditions import opaque_tag
from scim2_server.service import ScimService
from scim2_server.storage import AsyncScimStorage, SearchPage

from authz_service.api.scim.context import current
from authz_service.api.scim.errors import scim_error
from authz_service.errors import AuthzError
from authz_service.service.audit import CallInfo
from authz_service.service.provisioning import ProvisioningService
from authz_service.store.scim import ScimRecord, VersionConflict

__all__ = ["ProvisioningStorage", "etag"]

T = TypeVar("T")


def etag(version: int) -> str:
    return f'W/"{version}"'


def _version(tag: str | None) -> int | None:
    if tag is None:
        return None
    try:
        return int(opaque_tag(tag))
    except ValueError:
        raise VersionConflict(f"version `{tag[:40]}` is not one this server issued") from None


async def _translated(operation: Callable[[], Awaitable[T]]) -> T:
    try:
        return await operation()
    except AuthzError as exc:
        raise scim_error(exc) from None


def _kind(resource_type: ResourceType) -> str:
    return resource_type.name or ""


def _call() -> CallInfo:
    state = current()
    return CallInfo(credential_id=state.key.key_id if state.key else None, reason=state.reason)


class ProvisioningStorage(AsyncScimStorage):
    def __init__(self, provisioning: ProvisioningService, service: ScimService) -> None:
        self._provisioning = provisioning
        self._service = service

    def _resource(self, resource_type: ResourceType, record: ScimRecord) -> Resource[Any]:
        model = self._service.get_model(resource_type)
        resource = model.model_validate({**record.document, "id": record.resource_id})
        resource.meta = Meta(
            resource_type=_kind(resource_type),
            created=record.created,
            last_modified=record.modified,
            version=etag(record.version),
        )
        return resource

    @staticmethod
    def _document(resource: Resource[Any]) -> dict[str, Any]:
        return resource.model_dump(mode="json", exclude_none=True)

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        tenant = current().tenant
        record = await _translated(
            lambda: self._provisioning.get(tenant, _kind(resource_type), resource_id)
        )
        return self._resource(resource_type, record)

    async def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        tenant = current().tenant
        found: list[Resource[Any]] = []
        for resource_type in resource_types:
            kind = _kind(resource_type)
            records = await _translated(partial(self._provisioning.list, tenant, kind))
            model = self._service.get_model(resource_type)
            flt = search_request.filter
            if flt is not None and not flt.models:
                flt = cast(Any, ScimFilter)[model](str(flt))
            for record in records:
                resource = self._resource(resource_type, record)
                if flt is None or flt.match(resource):
                    found.append(resource)
        if search_request.sort_by is not None:
            descending = search_request.sort_order == SearchRequest.SortOrder.descending
            present = [r for r in found if search_request.sort_value(r) is not None]
            absent = [r for r in found if search_request.sort_value(r) is None]
            present.sort(key=search_request.sort_value, reverse=descending)
            found = present + absent  # missing values last, either order
        start = search_request.start_index_0 or 0
        stop = None if search_request.count is None else start + search_request.count
        return SearchPage(len(found), found[start:stop])

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        state = current()
        document = self._document(resource)
        pushed = await _translated(
            lambda: self._provisioning.create(state.tenant, _kind(resource_type), document, _call())
        )
        state.revision = pushed.revision
        return self._resource(resource_type, pushed.record)

    async def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        state = current()
        document = self._document(resource)

        async def replace() -> Any:
            return await self._provisioning.replace(
                state.tenant,
                _kind(resource_type),
                cast(str, resource.id),
                document,
                _version(expected_version),
                _call(),
            )

        pushed = await _translated(replace)
        state.revision = pushed.revision
        return self._resource(resource_type, pushed.record)

    async def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        state = current()

        async def delete() -> Any:
            return await self._provisioning.delete(
                state.tenant, _kind(resource_type), resource_id, _version(expected_version), _call()
            )

        state.revision = await _translated(delete)
