"""`python -m sgcd ...` is `sgcd ...` (used by `sgcd compare --jobs N` to start its training processes)."""

import sys

from sgcd.cli import main

sys.exit(main())
