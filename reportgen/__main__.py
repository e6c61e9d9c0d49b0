"""`python -m reportgen` runs the command-line interface."""

import sys

from reportgen.cli import main

sys.exit(main())
