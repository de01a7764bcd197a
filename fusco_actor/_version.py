"""The version of fusco_actor: the one place it is written (setup.cfg reads it with ``attr:``)."""

__version__ = "0.2.0.dev0"
