"""``python -m tunneltwin``: the same as the ``tunneltwin`` command."""

import sys

from tunneltwin.cli import main

sys.exit(main())
