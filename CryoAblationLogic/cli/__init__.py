"""The ``cryoablation`` command: ``main.py`` builds the parser; each subcommand is one module here
defining ``NAME``, ``HELP``, ``add_arguments`` and ``run``."""
