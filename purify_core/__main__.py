"""`python -m purify_core ...`: see `purify_core.cli`."""

import sys

from .cli import main

sys.exit(main())
