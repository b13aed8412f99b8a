"""``python -m cpaas``: the operator CLI."""
import sys

from cpaas.cli import main

sys.exit(main())
