"""Redirector's conformance harness: one case suite, every backend, one report.

Entry points: `redirector conformance …` (which runs `python3 -m conformance …` from
Tests/Conformance) and `swift package conformance`. See docs/conformance.md.
"""
