"""``python -m hpcx`` is the ``hpcx`` command."""

import sys

from hpcx.cli import main

sys.exit(main())
