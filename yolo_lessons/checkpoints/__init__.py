"""Checks behind the chapters' checkpoint cells.

Each chapter has a module here (``chapter1`` ...) whose ``check_*`` functions take
what the learner built, print a short deterministic report, and raise
``AssertionError`` with a message that names the mistake when it is a known one and
otherwise says what was expected and what came. ``common`` holds the diagnostics they
share.
"""
