"""`python -m purify_core.bench ...`: the same as `python -m purify_core bench ...` (kept so older commands work)."""

from __future__ import annotations

import sys
from typing import Sequence

from ..cli import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
