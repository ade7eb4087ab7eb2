"""JSON log lines parse and carry the request id of the call that wrote them."""

from __future__ import annotations

import io
import json
import logging

import pytest

from authz_service.telemetry import REQUEST_ID_HEADER, configure_logging
from tests.telemetry.conftest import Harness

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("restore_logging")]


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_json_lines_carry_request_id_and_extra(harness: Harness) -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    await harness.unary()(b"hello", metadata=((REQUEST_ID_HEADER, "req-json"),))
    records = [r for r in lines(out) if r["logger"] == "tests.telemetry.echo"]
    assert len(records) == 1
    record = records[0]
    assert record["message"] == "echo called"
    assert record["level"] == "INFO"
    assert record["request_id"] == "req-json"
    assert record["payload"] == "hello"
    assert isinstance(record["time"], str)
    assert record["time"].endswith("Z")
    assert "trace_id" not in record  # not sampled


@pytest.mark.parametrize("trace_ratio", [1.0])
async def test_json_lines_carry_trace_id_when_sampled(harness: Harness) -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    reply = await harness.unary()(b"hello")
    (record,) = [r for r in lines(out) if r["logger"] == "tests.telemetry.echo"]
    assert record["trace_id"] == reply.decode().split("|")[1]


async def test_unhandled_error_is_logged_with_request_id(harness: Harness) -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    with pytest.raises(Exception, match="boom"):
        await harness.unary()(b"boom", metadata=((REQUEST_ID_HEADER, "req-boom"),))
    errors = [r for r in lines(out) if r["level"] == "ERROR"]
    assert errors
    assert errors[0]["request_id"] == "req-boom"  # grpc's own log line
    assert "RuntimeError: boom" in str(errors[0]["exception"])


def test_outside_a_call_and_odd_values() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", json=True, stream=out)
    logging.getLogger("x").debug("plain %s", "args", extra={"obj": object(), "n": 3})
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("x").exception("failed")
    plain, failed = lines(out)
    assert plain["message"] == "plain args"
    assert plain["request_id"] is None
    assert plain["n"] == 3
    assert str(plain["obj"]).startswith("<object object")
    assert "ValueError: bad" in str(failed["exception"])


def test_text_format_and_quiet_cel() -> None:
    out = io.StringIO()
    configure_logging("INFO", json=False, stream=out)
    logging.getLogger("x").info("hello")
    logging.getLogger("cel").warning("function failed")
    logging.getLogger("cel.sub").warning("function failed")
    text = out.getvalue()
    assert " INFO x [-]: hello" in text
    assert "function failed" not in text
