"""Benchmarks: plain scripts (not collected by pytest), each printing its figures
beside a baseline measured in the same run on the same machine.

``python -m tests.benchmarks`` runs them all (``make bench``); each one also
runs alone as ``python -m tests.benchmarks.<name>``. See BENCHMARKS.md.
"""
