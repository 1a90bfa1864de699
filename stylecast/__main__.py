"""`python -m stylecast …` runs the CLI (used where the console script is not on PATH)."""

import sys

from stylecast.cli import main

sys.exit(main())
