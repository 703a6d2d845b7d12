"""Subcommands of the ``cryoablation`` command, one module each (see ``cli.py``)."""
