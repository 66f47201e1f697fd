"""Lets ``python -m modbot`` run the same CLI as the ``modbot`` script."""

import sys

from modbot.cli.main import main

sys.exit(main())
