"""Lets ``python -m modbot`` run the same CLI as the ``modbot`` script."""

import sys

from modbot.cli import main

sys.exit(main())
