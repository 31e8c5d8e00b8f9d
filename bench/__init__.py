"""Benchmarks of the ``reconcile`` command against the local emulators and an embedded Postgres.

Run ``python -m bench`` (or ``make bench``); ``--quick`` for smaller scales, ``--only NAME`` for
one scenario, ``--profile NAME`` for a cProfile of one run done in-process.
"""
