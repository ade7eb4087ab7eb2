#!/usr/bin/env python3
"""One entry point for people and CI: `python3 scripts/dev.py serve|test|lint|ci`.

It needs only Python 3.11+: it creates `.venv`, installs the project with its dev
dependencies, generates the gRPC stubs, then runs the command inside the venv. The same
script runs locally and in `.ci/run`, so CI checks exactly what a developer checks.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".authz-installed"


def _run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, env=env)


def _install_fingerprint() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    for proto in sorted((ROOT / "proto").rglob("*.proto")):
        digest.update(proto.read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create the venv and install once; re-install when pyproject or protos change."""
    if not VENV_PYTHON.exists():
        print("creating .venv", file=sys.stderr)
        _run(sys.executable, "-m", "venv", VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    _run(VENV_PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(VENV_PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    _run(VENV_PYTHON, "scripts/gen_protos.py")
    _run(VENV_PYTHON, "-m", "pip", "install", "--quiet", "-e", "clients/python")
    STAMP.write_text(fingerprint)


def _buf_breaking() -> None:
    """The API must not break against the previous commit on main (buf's FILE rules)."""
    previous = subprocess.run(
        ["git", "rev-parse", "-q", "--verify", "HEAD~1"], cwd=ROOT, capture_output=True, check=False
    )
    if previous.returncode != 0:
        print("buf breaking: no previous commit in this clone; nothing to compare", file=sys.stderr)
        return
    _run(VENV / "bin" / "buf", "breaking", "--against", ".git#ref=HEAD~1")


def lint() -> None:
    _run(VENV_PYTHON, "-m", "ruff", "check", ".")
    _run(VENV_PYTHON, "-m", "ruff", "format", "--check", ".")
    _run(VENV_PYTHON, "-m", "mypy")
    _run(VENV_PYTHON, "-m", "mypy", "--strict", "clients/python/authz_client")
    _run(VENV / "bin" / "lint-imports")  # the layering contracts in pyproject.toml
    _run(VENV / "bin" / "buf", "lint")
    _buf_breaking()
    _run(VENV / "bin" / "hadolint", "Dockerfile")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("serve", "test", "lint", "ci", "setup"):
        print(__doc__)
        print("usage: python3 scripts/dev.py serve|test|lint|ci|setup [args...]")
        return 2
    command, rest = argv[0], argv[1:]
    ensure_environment()
    if command == "setup":
        return 0
    if command == "serve":
        os.execv(str(VENV / "bin" / "authz"), ["authz", "serve", *rest])
    if command in ("lint", "ci"):
        lint()
    if command in ("test", "ci"):
        # Tests find PostgreSQL themselves (tests/conftest.py): AUTHZ_TEST_DATABASE_URL,
        # else 127.0.0.1:5432, else an embedded server started for the run.
        result = subprocess.run([str(VENV_PYTHON), "-m", "pytest", *rest], cwd=ROOT, check=False)
        return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
