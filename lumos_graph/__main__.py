"""``python -m lumos_graph`` runs the command line."""

import sys

from lumos_graph.cli.main import main

sys.exit(main())
