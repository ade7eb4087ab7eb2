"""`authz audit explain` and `replay` given a database they cannot use: one line saying
why and exit 2 (bad input), as for a database that cannot be reached, never a traceback
or exit 1 (which means a replay differed)."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from authz_service.decisionlog import DecisionLogConfig, DecisionLogWriter
from tests.decisionlog.helpers import make_record
from tests.pg import admin_url, with_database

from .helpers import run_cli


def _with_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port or 5432}"))


def _with_port(url: str, port: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{port}"))


MISSING = f"authz_test_missing_{secrets.token_hex(4)}"
CASES = [
    (with_database(admin_url(), MISSING), f'database "{MISSING}" does not exist'),
    (_with_user(admin_url(), MISSING), f'role "{MISSING}" does not exist'),
    (_with_port(admin_url(), "notaport"), "the database url is not a valid postgresql url"),
]


@pytest.fixture
async def log_dir(tmp_path: Path) -> tuple[Path, str]:
    """A log with one plain check (no recorded tree: explain replays it): (dir, its id)."""
    record = make_record(1)
    async with DecisionLogWriter(DecisionLogConfig(root=tmp_path / "log")) as writer:
        await writer.append(record)
    return tmp_path / "log", record.decision_id


@pytest.mark.parametrize(("url", "reason"), CASES)
def test_explain_and_replay_name_what_is_wrong_with_the_database(
    log_dir: tuple[Path, str], url: str, reason: str
) -> None:
    root, decision_id = log_dir
    for command in (["explain", decision_id], ["replay"]):
        status, _, err = run_cli("audit", *command, "--log-dir", str(root), "--database-url", url)
        assert status == 2, err
        assert err.strip().splitlines()[-1].startswith("error: "), err
        assert reason in err
        assert "notaport" not in err  # a url is never quoted: it may hold a password
