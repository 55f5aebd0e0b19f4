"""Allow ``python -m stratmancer_jobs``."""

from __future__ import annotations

from stratmancer_jobs.cli import main

if __name__ == "__main__":
    main()
