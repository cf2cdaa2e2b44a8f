"""``python -m advland`` (also what ``torchrun ... -m advland`` launches)."""

import sys

from .cli import main

sys.exit(main())
