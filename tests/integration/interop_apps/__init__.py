"""Tiny apps that the interop tests run under real servers (see ``routes.py``)."""
