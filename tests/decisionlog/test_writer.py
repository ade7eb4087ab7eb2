"""The writer's two modes, group commit, backpressure, close and failure, on real files."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz_service.decisionlog import (
    REDACTED_MARKER,
    DecisionLogConfig,
    DecisionLogWriter,
    LogMode,
    OverflowPolicy,
    verify_all,
    verify_stream,
)
from authz_service.decisionlog.layout import stream_dir_name
from authz_service.errors import FailedPrecondition, InvalidArgument, Unavailable

from .helpers import decode, make_record, read_all_lines, segments, stream_dir, wait_until


async def test_durable_group_commit_batches_concurrent_appends(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    tenants = ("acme", "globex", "initech")
    records = [make_record(i, tenants[i % 3]) for i in range(300)]
    async with DecisionLogWriter(config) as writer:
        entries = await asyncio.gather(*(writer.append(r) for r in records))
        stats = writer.stats()

    assert stats.written == stats.appended == 300
    assert stats.fsyncs < 300, stats
    assert stats.batches < 300, stats
    assert stats.dropped == 0
    assert stats.queued == 0
    assert stats.fsync_seconds_avg > 0
    for tenant in tenants:
        mine = [r.decision_id for r in records if r.tenant == tenant]
        stored = [decode(line) for line in read_all_lines(config, tenant)]
        assert [d["decision_id"] for d in stored] == mine  # chained in append order
        assert [d["seq"] for d in stored] == list(range(100))
    assert [e.seq for e in entries if e.tenant == "acme"] == list(range(100))
    assert all(r.ok for r in verify_all(config.root, public_key))


async def test_durable_records_arriving_during_an_fsync_share_the_next_one(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    # Ten callers, each waiting for its own record before sending the next, as request
    # handlers do (in flight from their start, then appending): while one fsync runs,
    # the others queue up behind it, and a batch waits for calls still in flight.
    async def caller(n: int) -> list[int]:
        seqs = []
        for i in range(30):
            with writer.expecting():
                await asyncio.sleep(0)  # evaluating the request
                seqs.append((await writer.append(make_record(n * 100 + i))).seq)
        return seqs

    # Once a batch has resolved several callers the next waits out the window for
    # company (no call may be in flight then), so the window is short.
    async with DecisionLogWriter(replace(config, commit_window=0.05)) as writer:
        async with asyncio.timeout(60):
            seqs = await asyncio.gather(*(caller(n) for n in range(10)))
        stats = writer.stats()
    assert stats.written == 300
    assert stats.fsyncs == stats.batches  # one stream: one fsync per batch
    assert stats.batches <= 300 // 5, stats  # several records per fsync on average
    assert all(s == sorted(s) for s in seqs)  # each caller's records in its own order
    assert sorted(x for s in seqs for x in s) == list(range(300))
    report = verify_stream(stream_dir(config), public_key)
    assert report.ok
    assert report.records == 300


async def test_durable_append_returns_after_the_line_is_on_disk(config: DecisionLogConfig) -> None:
    async with DecisionLogWriter(config) as writer:
        for i in range(3):
            entry = await writer.append(make_record(i))
            # No flush was awaited: the line must already be in the file.
            assert read_all_lines(config)[-1] == entry.line
        assert writer.stats().fsyncs == 3


async def test_a_lone_durable_caller_never_waits_for_the_commit_window(
    config: DecisionLogConfig,
) -> None:
    # The window is for concurrent load only; with nothing else queued a record is
    # written at once, so a window of an hour must not hold these appends back.
    async with DecisionLogWriter(replace(config, commit_window=3600.0)) as writer:
        async with asyncio.timeout(60):
            for i in range(5):
                entry = await writer.append(make_record(i))
                assert read_all_lines(config)[-1] == entry.line
        assert writer.stats().fsyncs == 5


async def test_buffered_records_appear_within_the_flush_bound(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    bound = 0.2
    config = replace(config, mode=LogMode.BUFFERED, flush_interval=bound)
    async with DecisionLogWriter(config) as writer:
        for i in range(5):
            await writer.append(make_record(i))
        assert writer.stats().written == 0  # append did not wait for the disk
        took = await wait_until(lambda: writer.stats().written == 5)  # written and fsync'd
        assert took < bound + 1.0  # generous slack for a loaded machine
        assert len(read_all_lines(config)) == 5
        assert writer.stats().batches == 1
    assert verify_stream(stream_dir(config), public_key).ok


async def test_buffered_full_batch_is_written_without_waiting_for_the_interval(
    config: DecisionLogConfig,
) -> None:
    config = replace(config, mode=LogMode.BUFFERED, flush_interval=60.0, max_batch=10)
    async with DecisionLogWriter(config) as writer:
        for i in range(10):
            await writer.append(make_record(i))
        await wait_until(lambda: len(read_all_lines(config)) == 10)


async def test_buffered_full_queue_applies_backpressure(config: DecisionLogConfig) -> None:
    config = replace(
        config, mode=LogMode.BUFFERED, flush_interval=0.5, max_queue=3, on_full=OverflowPolicy.BLOCK
    )
    async with DecisionLogWriter(config) as writer:
        for i in range(3):
            await writer.append(make_record(i))
        blocked = asyncio.create_task(writer.append(make_record(3)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not blocked.done()  # waiting for space, not dropped, not failed
        entry = await asyncio.wait_for(blocked, 5)  # the deadline flush makes room
        assert entry.seq == 3
        assert writer.stats().rejected == 0
    assert len(read_all_lines(config)) == 4


async def test_buffered_full_queue_raises_when_configured(config: DecisionLogConfig) -> None:
    config = replace(
        config,
        mode=LogMode.BUFFERED,
        flush_interval=30.0,
        max_queue=3,
        on_full=OverflowPolicy.ERROR,
    )
    writer = DecisionLogWriter(config)
    await writer.start()
    for i in range(3):
        await writer.append(make_record(i))
    with pytest.raises(Unavailable, match="decision log buffer full"):
        await writer.append(make_record(3))
    assert writer.stats().rejected == 1
    await writer.aclose()  # flushes the three accepted records despite the long interval
    assert [decode(line)["seq"] for line in read_all_lines(config)] == [0, 1, 2]
    assert writer.stats().dropped == 0


async def test_aclose_flushes_everything_and_checkpoints(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    config = replace(config, mode=LogMode.BUFFERED, flush_interval=60.0)
    writer = DecisionLogWriter(config)
    await writer.start()
    for i in range(50):
        await writer.append(make_record(i, ("acme", "globex")[i % 2]))
    await writer.aclose()
    assert writer.stats().written == 50
    assert writer.stats().checkpoints == 2
    reports = verify_all(config.root, public_key)
    assert [(r.records, r.covered_seq, r.ok) for r in reports] == [(25, 24, True)] * 2


async def test_checkpoints_are_written_at_the_interval(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    config = replace(config, checkpoint_interval=0.05)
    async with DecisionLogWriter(config) as writer:
        await writer.append(make_record(0))
        await wait_until(lambda: writer.stats().checkpoints >= 1)
        await writer.append(make_record(1))
        await wait_until(lambda: writer.stats().checkpoints >= 2)
    assert verify_stream(stream_dir(config), public_key).covered_seq == 1


async def test_append_outside_start_and_close_raises(config: DecisionLogConfig) -> None:
    writer = DecisionLogWriter(config)
    with pytest.raises(Unavailable):
        await writer.append(make_record(0))
    async with writer:
        await writer.append(make_record(0))
    with pytest.raises(Unavailable):
        await writer.append(make_record(1))
    with pytest.raises(FailedPrecondition):
        await writer.start()


async def test_second_writer_on_the_same_root_is_refused(config: DecisionLogConfig) -> None:
    async with DecisionLogWriter(config):
        with pytest.raises(Unavailable, match="in use by another writer"):
            await DecisionLogWriter(config).start()


async def test_redaction_happens_before_hashing(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    config = replace(config, redact_paths=("$.ssn", "$.card.number", "$.absent.path"))
    context = {"ssn": "SECRET-SSN-1", "card": {"number": "SECRET-PAN-2", "exp": "12/30"}, "n": 1}
    async with DecisionLogWriter(config) as writer:
        entry = await writer.append(make_record(0, context=context))

    assert entry.record.redacted == ("$.card.number", "$.ssn")
    assert entry.record.context["ssn"] == REDACTED_MARKER
    assert entry.record.context["card"] == {"number": REDACTED_MARKER, "exp": "12/30"}
    raw = (stream_dir(config) / "000001.jsonl").read_bytes()
    assert b"SECRET-" not in raw
    assert decode(raw.splitlines()[0])["redacted"] == ["$.card.number", "$.ssn"]
    assert verify_stream(stream_dir(config), public_key).ok  # the hash covers the redacted form
    assert context["ssn"] == "SECRET-SSN-1"  # the caller's dict is left alone


def test_bad_redaction_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="redaction path"):
        DecisionLogConfig(root=tmp_path, redact_paths=("ssn",))


async def test_write_failure_fails_durable_appends_loudly(
    config: DecisionLogConfig, caplog: pytest.LogCaptureFixture
) -> None:
    # A plain file where the stream directory must go makes the real mkdir fail.
    config.root.mkdir(parents=True)
    (config.root / stream_dir_name("blocked")).write_bytes(b"")
    writer = DecisionLogWriter(config)
    await writer.start()
    with pytest.raises(Unavailable, match="decision log write failed"):
        await writer.append(make_record(0, "blocked"))
    with pytest.raises(Unavailable):
        await writer.append(make_record(1, "acme"))
    with caplog.at_level(logging.ERROR), pytest.raises(Unavailable):
        await writer.aclose()
    assert writer.stats().dropped == 0  # the caller was told; nothing was silently lost


async def test_write_failure_in_buffered_mode_counts_and_logs_lost_records(
    config: DecisionLogConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config = replace(config, mode=LogMode.BUFFERED, flush_interval=0.01)
    config.root.mkdir(parents=True)
    (config.root / stream_dir_name("blocked")).write_bytes(b"")
    writer = DecisionLogWriter(config)
    await writer.start()
    with caplog.at_level(logging.ERROR):
        await writer.append(make_record(0, "blocked"))
        await wait_until(lambda: writer.stats().dropped == 1)
    assert "1 buffered records were not written" in caplog.text
    with pytest.raises(Unavailable):
        await writer.aclose()


async def test_a_lone_caller_in_flight_is_not_held_by_the_commit_window(
    config: DecisionLogConfig,
) -> None:
    # Appending ends the call's "in flight" count, so nobody is left to wait for.
    async with DecisionLogWriter(replace(config, commit_window=3600.0)) as writer:
        async with asyncio.timeout(60):
            for i in range(3):
                with writer.expecting():
                    entry = await writer.append(make_record(i))
                assert read_all_lines(config)[-1] == entry.line
        assert writer.stats().fsyncs == 3


async def test_a_batch_waits_for_calls_in_flight_and_shares_their_fsync(
    config: DecisionLogConfig,
) -> None:
    callers = 4
    all_in = asyncio.Barrier(callers)

    async def call(n: int) -> int:
        with writer.expecting():
            await all_in.wait()  # every call is in flight before the first appends
            return (await writer.append(make_record(n))).seq

    async with DecisionLogWriter(replace(config, commit_window=3600.0)) as writer:
        async with asyncio.timeout(60):
            seqs = await asyncio.gather(*(call(n) for n in range(callers)))
        stats = writer.stats()
    assert sorted(seqs) == list(range(callers))
    assert stats.written == callers
    assert stats.fsyncs == stats.batches == 1  # the first record waited for the other three


async def test_after_a_batch_of_several_callers_the_next_waits_for_company(
    config: DecisionLogConfig,
) -> None:
    # Cache hits append in the same step of the event loop that began them, so they are
    # never seen in flight: the last batch having resolved several callers is what says
    # that more are coming. The window is an hour; full batches (2) end the waits.
    async def in_flight_pair() -> None:
        both_in = asyncio.Barrier(2)

        async def call(n: int) -> None:
            with writer.expecting():
                await both_in.wait()
                await writer.append(make_record(n))

        await asyncio.gather(call(0), call(1))

    async with DecisionLogWriter(replace(config, commit_window=3600.0, max_batch=2)) as writer:
        async with asyncio.timeout(60):
            await in_flight_pair()  # one batch of two callers
            first = asyncio.create_task(writer.append(make_record(2)))  # not in flight
            await asyncio.sleep(0)  # let it queue: it is held for company, not written
            second = asyncio.create_task(writer.append(make_record(3)))
            await asyncio.gather(first, second)
        stats = writer.stats()
    assert stats.written == 4
    assert stats.batches == 2, stats  # the lone third record waited for the fourth


async def test_a_durable_append_returns_only_after_the_fsync_that_covers_its_line(
    config: DecisionLogConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real fsync runs; the spy notes how many bytes of each file it made durable.
    durable: dict[int, int] = {}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        size = os.fstat(fd).st_size
        real_fsync(fd)
        durable[os.stat(f"/proc/self/fd/{fd}").st_ino] = size

    monkeypatch.setattr(os, "fsync", fsync)

    async def caller(n: int) -> None:
        for i in range(20):
            entry = await writer.append(make_record(n * 100 + i))
            (segment,) = segments(config)
            content = segment.read_bytes()
            end = content.index(entry.line + b"\n") + len(entry.line) + 1
            assert durable.get(segment.stat().st_ino, 0) >= end  # on disk before the answer

    async with DecisionLogWriter(replace(config, commit_window=0.005)) as writer:
        async with asyncio.timeout(60):
            await asyncio.gather(*(caller(n) for n in range(8)))
        stats = writer.stats()
    assert stats.written == stats.appended == 160
    assert stats.dropped == 0
    assert stats.batches < 160, stats  # they shared fsyncs


async def test_a_call_that_ends_without_a_record_stops_holding_the_batch(
    config: DecisionLogConfig,
) -> None:
    in_flight, gave_up = asyncio.Event(), asyncio.Event()

    async def silent() -> None:
        with writer.expecting():  # in flight, then fails before logging anything
            in_flight.set()
            await gave_up.wait()

    async with DecisionLogWriter(replace(config, commit_window=3600.0)) as writer:
        other = asyncio.create_task(silent())
        async with asyncio.timeout(60):  # not the hour-long window
            await in_flight.wait()
            logged = asyncio.create_task(writer.append(make_record(0)))  # waits for `silent`
            gave_up.set()
            entry = await logged
        await other
        assert read_all_lines(config) == [entry.line]


async def test_close_stops_the_writer_thread(config: DecisionLogConfig) -> None:
    import threading

    async with DecisionLogWriter(config) as writer:
        await writer.append(make_record(0))
        assert any(t.name == "decision-log-writer" for t in threading.enumerate())
    assert not any(t.name == "decision-log-writer" for t in threading.enumerate())


async def test_append_many_is_durable_after_one_fsync_for_the_whole_group(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    # CheckBulk's items: one call, one fsync, not one per item.
    records = [make_record(i) for i in range(50)]
    async with DecisionLogWriter(replace(config, commit_window=3600.0)) as writer:
        async with asyncio.timeout(60):
            entries = await writer.append_many(records)
        # Returned only once every line is on disk, in order.
        assert read_all_lines(config) == [e.line for e in entries]
        stats = writer.stats()
    assert [e.seq for e in entries] == list(range(50))
    assert stats.written == stats.appended == 50
    assert stats.fsyncs == stats.batches == 1
    assert all(r.ok for r in verify_all(config.root, public_key))


async def test_append_many_spanning_batches_waits_for_the_last_one(
    config: DecisionLogConfig,
) -> None:
    async with DecisionLogWriter(replace(config, max_batch=7)) as writer:
        entries = await writer.append_many([make_record(i) for i in range(30)])
        assert read_all_lines(config) == [e.line for e in entries]
        assert writer.stats().batches >= 5


async def test_append_many_failure_fails_the_call_and_loses_nothing_silently(
    config: DecisionLogConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config.root.mkdir(parents=True)
    (config.root / stream_dir_name("blocked")).write_bytes(b"")
    writer = DecisionLogWriter(config)
    await writer.start()
    with pytest.raises(Unavailable, match="decision log write failed"):
        await writer.append_many([make_record(i, "blocked") for i in range(5)])
    with caplog.at_level(logging.ERROR), pytest.raises(Unavailable):
        await writer.aclose()
    assert writer.stats().dropped == 0  # the caller was told about every one of them
