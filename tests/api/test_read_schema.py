"""ReadSchema over gRPC: `create_time` is when the version read was first written, also
for a version written again later (schema.proto)."""

from __future__ import annotations

import grpc

from authz_service.api.gen.authz.v1 import schema_pb2
from tests.api.helpers import SCHEMA, Api

OTHER = SCHEMA + "\ndefinition team {}\n"


async def _read(api: Api, version: str = "") -> schema_pb2.ReadSchemaResponse:
    return await api.schema.ReadSchema(schema_pb2.ReadSchemaRequest(schema_version=version))


async def test_read_schema_says_when_the_version_was_first_written(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    first = await api.write_schema(SCHEMA)
    current = await _read(api)
    assert (current.schema_version, current.current) == (first, True)
    assert current.HasField("create_time")
    created = current.create_time.ToDatetime()
    assert (await _read(api, first)).create_time.ToDatetime() == created

    second = await api.write_schema(OTHER)
    later = await _read(api, second)
    assert later.HasField("create_time")
    assert later.create_time.ToDatetime() >= created
    old = await _read(api, first)
    assert not old.current
    assert old.create_time.ToDatetime() == created

    assert await api.write_schema(SCHEMA) == first  # back to the first version
    again = await _read(api)
    assert (again.schema_version, again.current) == (first, True)
    assert again.create_time.ToDatetime() == created
