"""Files a command reads whole (a schema to validate, a PEM file, a setting's file)."""

from __future__ import annotations

import os
import stat

__all__ = ["unreadable"]


def unreadable(path: str) -> str | None:
    """Why `path` cannot be read as a file, or None. Checked before opening it: opening a
    FIFO waits for a writer and reading a device may never end, and neither gives way to
    Ctrl-C, so only a readable regular file is read."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None
