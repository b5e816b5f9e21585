"""`python -m vitpose ...` is the same as the `vitpose` command."""

import sys

from .cli.main import main

sys.exit(main())
