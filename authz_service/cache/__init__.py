"""Decision and subproblem caches keyed by everything that changes the answer."""
