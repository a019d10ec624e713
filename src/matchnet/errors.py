"""The one exception type for errors caused by user input."""

from __future__ import annotations


class MatchnetError(Exception):
    """Bad input from the user: a config value, a file, a folder or a checkpoint.

    The message names the offending key or path, its value, and how to fix it. Entry points
    print it without a traceback and exit with status 2.
    """
