"""``python -m minictr.cli``: the command line of this very copy of minictr."""

import sys

from minictr.cli.main import main

sys.exit(main())
