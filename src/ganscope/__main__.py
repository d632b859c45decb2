"""`python -m ganscope ...` (and `torchrun ... -m ganscope ...`): the `ganscope` command."""

import sys

from ganscope.cli import main

sys.exit(main())
