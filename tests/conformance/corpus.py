"""Where the SpiceDB validation files live: vendored in tests/conformance/spicedb (with
their licence and provenance in that folder's README), so a clone anywhere runs the
same suite. AUTHZ_CONFORMANCE_DIR points the suites at another corpus (held-out files)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CORPUS", "corpus_files"]

CORPUS = Path(os.environ.get("AUTHZ_CONFORMANCE_DIR") or Path(__file__).parent / "spicedb")


def corpus_files(*, include_skipped: bool = True) -> list[Path]:
    """Every validation file; `self.yaml.skip` is skipped upstream only because SpiceDB's
    harness cannot express `self`, which ours can."""
    patterns = ["*.yaml", "*.yaml.skip"] if include_skipped else ["*.yaml"]
    return sorted(path for pattern in patterns for path in CORPUS.glob(pattern))
