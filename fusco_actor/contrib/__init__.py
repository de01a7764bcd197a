"""Integrations of fusco_actor with other frameworks, each behind an extra.

- :mod:`fusco_actor.contrib.locust`: ``FuscoUser``, a Locust user whose
  ``self.client`` sends through fusco_actor (``pip install 'fusco_actor[locust]'``).

Nothing here is imported by ``import fusco_actor``, except the gevent support
(:mod:`fusco_actor.contrib._gevent`), which the scheduler loads only in a
process that gevent has already monkey-patched.
"""
