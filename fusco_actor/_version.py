"""The version of fusco_actor: the one place it is written (setup.cfg reads it with ``attr:``)."""

__version__ = "0.3.0.dev0"
