"""Counting checks and collecting failure lines for one validation file."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FileReport"]


@dataclass(slots=True)
class FileReport:
    """`passed` counts individual checks; each failure is one printable line
    `FILE: WHAT: message`."""

    path: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, what: str, message: str, *, separator: str = ": ") -> None:
        self.failures.append(f"{self.path}: {what}{separator}{message}")

    def expect(self, ok: bool, what: str, message: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.fail(what, message)

    @property
    def failed(self) -> int:
        return len(self.failures)
