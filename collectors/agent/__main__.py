"""`python -m collectors.agent`: the node agent without the rest of jouletrace's command line."""

import sys

from collectors.agent.cli import main

sys.exit(main())
