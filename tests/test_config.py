"""Settings defaults, and the documentation that states them."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

from authz_service.cli import main, serve
from authz_service.config import Settings, load_settings
from authz_service.decisionlog import DecisionLogConfig, LogMode
from authz_service.errors import InvalidArgument

ROOT = Path(__file__).resolve().parent.parent


def _serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_the_decision_log_is_durable_by_default() -> None:
    # Buffered mode loses answered decisions on a crash; the default must not.
    assert load_settings(environ={}).log_mode == "durable"
    assert DecisionLogConfig(root=Path("unused")).mode is LogMode.DURABLE


def test_serve_without_a_flag_or_variable_logs_durably(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHZ_DECISION_LOG", raising=False)
    assert serve._settings(_serve_args()).log_mode == "durable"
    monkeypatch.setenv("AUTHZ_DECISION_LOG", "buffered")
    assert serve._settings(_serve_args()).log_mode == "buffered"
    assert serve._settings(_serve_args("--decision-log", "off")).log_mode == "off"


def test_the_readme_states_the_default_decision_log_mode() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = re.search(r"^\| `AUTHZ_DECISION_LOG` \| `(\w+)` \|", readme, re.MULTILINE)
    assert row is not None, "README configuration table lacks AUTHZ_DECISION_LOG"
    assert row.group(1) == load_settings(environ={}).log_mode


def test_the_decision_log_page_names_the_same_default() -> None:
    page = (ROOT / "docs" / "decision-log.md").read_text(encoding="utf-8")
    defaults = re.findall(r"\*\*(durable|buffered)\*\* \(default\)", page)
    assert defaults == [load_settings(environ={}).log_mode]


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({"AUTHZ_TLS_CERT": "server.pem"}, "AUTHZ_TLS_KEY"),
        ({"AUTHZ_TLS_KEY": "server.key"}, "AUTHZ_TLS_CERT"),
        ({"AUTHZ_TLS_CLIENT_CA": "ca.pem"}, "AUTHZ_TLS_CLIENT_CA"),
        (
            {"AUTHZ_TLS_CERT": "s.pem", "AUTHZ_TLS_KEY": "s.key", "AUTHZ_PLAINTEXT": "true"},
            "AUTHZ_PLAINTEXT",
        ),
        (
            {"AUTHZ_TLS_CERT": "s.pem", "AUTHZ_TLS_KEY": "s.key", "AUTHZ_TLS_CLIENT_MAP": "m"},
            "AUTHZ_TLS_CLIENT_MAP",
        ),
    ],
)
def test_incomplete_or_contradictory_tls_settings_are_refused(
    environ: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        load_settings(environ=environ)
    assert refused.value.field == field


def test_serve_flags_set_tls() -> None:
    args = _serve_args("--tls-cert", "s.pem", "--tls-key", "s.key", "--tls-client-ca", "ca.pem")
    settings = serve._settings(args)
    assert (settings.tls_cert, settings.tls_key, settings.tls_client_ca) == (
        "s.pem",
        "s.key",
        "ca.pem",
    )
    assert serve._settings(_serve_args("--plaintext")).plaintext is True


def test_replica_urls_are_a_list_and_need_their_primary() -> None:
    settings = load_settings(
        environ={
            "AUTHZ_DATABASE_URL": "postgresql://db/authz",
            "AUTHZ_DATABASE_REPLICA_URLS": " postgresql://r1/authz, ,postgresql://r2/authz ",
        }
    )
    assert settings.replica_urls == ("postgresql://r1/authz", "postgresql://r2/authz")
    for primary in ("", "memory://"):
        with pytest.raises(InvalidArgument, match="AUTHZ_DATABASE_URL") as refused:
            load_settings(
                environ={
                    "AUTHZ_DATABASE_URL": primary,
                    "AUTHZ_DATABASE_REPLICA_URLS": "postgresql://u:secret@r1/authz",
                }
            )
        assert "secret" not in str(refused.value)
    with pytest.raises(InvalidArgument, match="AUTHZ_REPLICA_MAX_LAG_MS"):
        load_settings(environ={"AUTHZ_REPLICA_MAX_LAG_MS": "0"})


def test_database_passwords_stay_out_of_the_settings_repr() -> None:
    settings = Settings(
        database_url="postgresql://authz:primary-secret@db:5432/authz",
        database_replica_urls="postgresql://authz:replica-secret@standby:5432/authz",
    )
    shown = repr(settings)
    assert "primary-secret" not in shown
    assert "replica-secret" not in shown


def test_a_negative_commit_window_is_refused_naming_it() -> None:
    with pytest.raises(InvalidArgument, match="AUTHZ_LOG_COMMIT_WINDOW_MS") as refused:
        load_settings(environ={"AUTHZ_LOG_COMMIT_WINDOW_MS": "-5"})
    assert refused.value.field == "log_commit_window_ms"
    assert load_settings(environ={"AUTHZ_LOG_COMMIT_WINDOW_MS": "0"}).log_commit_window_ms == 0


def test_a_negative_refresh_ahead_is_refused_naming_it() -> None:
    with pytest.raises(InvalidArgument, match="AUTHZ_REFRESH_AHEAD_MS") as refused:
        load_settings(environ={"AUTHZ_REFRESH_AHEAD_MS": "-1"})
    assert refused.value.field == "refresh_ahead_ms"
    assert load_settings(environ={"AUTHZ_REFRESH_AHEAD_MS": "0"}).refresh_ahead_ms == 0


def test_a_caveat_size_past_what_the_cel_parser_survives_is_refused() -> None:
    # A 40 KB chain of member accesses overflowed the CEL parser's native stack and
    # ended the process (a segfault, no error); nothing bounded the setting.
    with pytest.raises(InvalidArgument, match="AUTHZ_MAX_CAVEAT_BYTES") as refused:
        load_settings(environ={"AUTHZ_MAX_CAVEAT_BYTES": "65536"})
    assert refused.value.field == "max_caveat_bytes"
    assert load_settings(environ={"AUTHZ_MAX_CAVEAT_BYTES": "16384"}).max_caveat_bytes == 16384


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("not-a-url", "not-a-url"),
        (
            "postgresql://authz:hunter2@standby:99999/authz",
            "postgresql://authz:***@standby:99999/authz",
        ),
        ("postgresql://authz:hunter2@[::1/authz", "postgresql://authz:***@[::1/authz"),
        ("http://standby/authz?password=hunter2", "http://standby/authz?password=***"),
    ],
)
def test_a_replica_url_asyncpg_cannot_use_is_refused_naming_the_setting(
    url: str, shown: str
) -> None:
    """Accepted, it was retried by every probe (about 10 warnings a second of
    `ClientConfigurationError: invalid DSN`, or an OverflowError for the port), never
    naming the setting."""
    with pytest.raises(InvalidArgument, match="AUTHZ_DATABASE_REPLICA_URLS") as refused:
        load_settings(
            environ={
                "AUTHZ_DATABASE_URL": "postgresql://db/authz",
                "AUTHZ_DATABASE_REPLICA_URLS": f"postgresql://r1/authz,{url}",
            }
        )
    assert f"`{shown}`" in refused.value.message
    assert "hunter2" not in str(refused.value)


def test_serve_refuses_an_invalid_replica_url_with_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The CLI's exit status for a server that cannot start, before the database is
    touched (the primary here would refuse the connection)."""
    for name in [n for n in os.environ if n.startswith("AUTHZ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AUTHZ_DATABASE_URL", "postgresql://authz@127.0.0.1:1/authz")
    monkeypatch.setenv("AUTHZ_DATABASE_REPLICA_URLS", "postgresql://authz:hunter2@r1:99999/authz")
    monkeypatch.setenv("AUTHZ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AUTHZ_DECISION_LOG", "off")
    assert main(["serve", "--listen", "127.0.0.1:0", "--no-auth"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: AUTHZ_DATABASE_REPLICA_URLS: `postgresql://authz:***@r1:99999/authz`"
    )
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("environ", "flags"),
    [
        # A flag completes what the environment began...
        (
            {"AUTHZ_DATABASE_REPLICA_URLS": "postgresql://u@r1:5432/authz"},
            {"database_url": "postgresql://u@p:5432/authz"},
        ),
        ({"AUTHZ_TLS_CERT": "server.pem"}, {"tls_key": "server.key"}),
        ({"AUTHZ_TLS_CLIENT_CA": "ca.pem"}, {"tls_cert": "server.pem", "tls_key": "server.key"}),
        # ...or replaces a value of it that would be refused.
        ({"AUTHZ_DECISION_LOG": "bogus"}, {"log_mode": "off"}),
        ({"AUTHZ_DEFAULT_DEADLINE_MS": "soon"}, {"default_deadline_ms": 2000}),
    ],
)
def test_flags_override_the_environment_before_anything_is_checked(
    environ: dict[str, str], flags: dict[str, object]
) -> None:
    """README: flags override environment variables. The environment was checked on its
    own first, so a value a flag would complete or replace stopped the server."""
    settings = load_settings(flags, environ=environ)
    for name, value in flags.items():
        assert getattr(settings, name) == value


def test_watches_stay_below_the_servers_cap() -> None:
    # An open watch holds one of gRPC's AUTHZ_MAX_CONCURRENT_RPCS slots: as many watches
    # as that cap would leave no room for any other call.
    assert load_settings(environ={}).watch_limit == 128  # a quarter of 512
    assert load_settings(environ={"AUTHZ_MAX_CONCURRENT_RPCS": "40"}).watch_limit == 10
    assert load_settings(environ={"AUTHZ_MAX_WATCHES": "200"}).watch_limit == 200
    for watches in ("512", "-1"):
        with pytest.raises(InvalidArgument, match="AUTHZ_MAX_WATCHES") as refused:
            load_settings(environ={"AUTHZ_MAX_WATCHES": watches})
        assert refused.value.field == "max_watches"
    with pytest.raises(InvalidArgument, match="AUTHZ_TENANT_MAX_WATCHES"):
        load_settings(environ={"AUTHZ_TENANT_MAX_WATCHES": "0"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # D1: a port past 65535 was bound modulo 65536 (99999 -> 34463).
        ("AUTHZ_LISTEN", "127.0.0.1:99999"),
        ("AUTHZ_LISTEN", "[::1:5"),
        ("AUTHZ_LISTEN", "127.0.0.1:-1"),
        ("AUTHZ_LISTEN", "nohost"),
        ("AUTHZ_SCIM_LISTEN", "127.0.0.1:99999"),
        ("AUTHZ_CONSOLE_LISTEN", "127.0.0.1:65536"),
        ("AUTHZ_METRICS_LISTEN", "127.0.0.1:99999"),
        # D2: a ValueError or OverflowError traceback once the server started.
        ("AUTHZ_LOG_LEVEL", "VERBOSE"),
        ("AUTHZ_LOG_LEVEL", ""),
        ("AUTHZ_LOG_LEVEL", "5"),
        ("AUTHZ_MAX_CONCURRENT_RPCS", "99999999999999999999999"),
        # D7: accepted, then every call failed or a loop spun.
        ("AUTHZ_DEFAULT_DEADLINE_MS", "-1"),
        ("AUTHZ_DEFAULT_DEADLINE_MS", "0"),
        ("AUTHZ_DB_POOL_MIN", "-1"),
        ("AUTHZ_DB_POOL_MAX", "0"),
        ("AUTHZ_DB_POOL_MAX", "-1"),
        ("AUTHZ_MAX_FANOUT", "0"),
        ("AUTHZ_MAX_FANOUT", "-1"),
        ("AUTHZ_GC_INTERVAL_S", "-1"),
        ("AUTHZ_GC_INTERVAL_S", "0"),
        ("AUTHZ_GC_INTERVAL_S", "nan"),
        ("AUTHZ_RETENTION_HOURS", "-1"),
        ("AUTHZ_RETENTION_HOURS", "nan"),
        ("AUTHZ_RETENTION_HOURS", "inf"),
        ("AUTHZ_REVISION_POLL_MS", "-1"),
        ("AUTHZ_REVISION_POLL_MS", "0"),
        ("AUTHZ_MAX_STALENESS_MS", "-1"),
        ("AUTHZ_QUANTIZATION_MS", "-5"),
        ("AUTHZ_SHUTDOWN_GRACE_S", "-1"),
        ("AUTHZ_SHUTDOWN_GRACE_S", "nan"),
        ("AUTHZ_AUTH_CACHE_TTL_S", "nan"),
        ("AUTHZ_AUTH_BACKOFF_MAX_S", "nan"),
        ("AUTHZ_AUTH_NEGATIVE_TTL_S", "nan"),
        ("AUTHZ_LOG_CHECKPOINT_S", "nan"),
        ("AUTHZ_LOG_CHECKPOINT_S", "inf"),
        ("AUTHZ_LOG_COMMIT_WINDOW_MS", "nan"),
        ("AUTHZ_DB_STATEMENT_TIMEOUT_MS", "-1"),
        ("AUTHZ_INDEX_MAX_ROWS", "-1"),
        # D8: refused, but naming a field (`max_depth`) rather than the variable.
        ("AUTHZ_MAX_DEPTH", "0"),
        ("AUTHZ_LOG_CHECKPOINT_S", "0"),
        ("AUTHZ_LOG_FORMAT", "xml"),
        ("AUTHZ_TRACE_SAMPLE_RATIO", "nan"),
        ("AUTHZ_TRACE_SAMPLE_RATIO", "1.5"),
    ],
)
def test_an_invalid_setting_is_refused_naming_its_variable_and_value(
    variable: str, value: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        load_settings(environ={variable: value})
    assert refused.value.message.startswith(variable), refused.value.message
    assert f"`{value}`" in refused.value.message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTHZ_QUANTIZATION_MS", "-1"),  # the whole staleness window
        ("AUTHZ_QUANTIZATION_MS", "0"),  # follow the head
        ("AUTHZ_INDEX_MAX_ROWS", "0"),  # off
        ("AUTHZ_DB_STATEMENT_TIMEOUT_MS", "0"),  # never
        ("AUTHZ_AUTH_NEGATIVE_TTL_S", "0"),  # always look up
        ("AUTHZ_MAX_WATCHES", "0"),  # a quarter of the cap
        ("AUTHZ_LISTEN", "127.0.0.1:65535"),
        ("AUTHZ_LISTEN", "[::1]:0"),
        ("AUTHZ_LOG_LEVEL", "debug"),
        ("AUTHZ_TRACE_SAMPLE_RATIO", "1"),
    ],
)
def test_documented_special_values_stay_accepted(variable: str, value: str) -> None:
    load_settings(environ={variable: value})


def test_a_flag_with_a_bad_value_is_named_beside_its_variable() -> None:
    with pytest.raises(InvalidArgument, match=r"^AUTHZ_LISTEN \(--listen\): `127.0.0.1:99999`"):
        load_settings({"listen": "127.0.0.1:99999"}, environ={})


def test_a_pool_whose_minimum_exceeds_its_maximum_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="AUTHZ_DB_POOL_MIN"):
        load_settings(environ={"AUTHZ_DB_POOL_MIN": "11"})
