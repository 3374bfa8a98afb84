"""The one base class of every error a user can fix by changing their input.

The command line prints such an error as one line (its message must name the bad value) and
exits with status 2; any other exception is a bug and keeps its traceback. Plugins derive their
own input errors from :class:`UserError` too, so the core never needs to know their classes.
"""

from __future__ import annotations

__all__ = ["DataUnavailableError", "UserError"]


class UserError(Exception):
    """Bad input (an argument, a file, a name); the message names the value and what is expected."""


class DataUnavailableError(UserError):
    """Data an evaluator reads is missing or unreadable on this machine. A search whose trials run
    elsewhere (a remote training service) reads it on the workers, so the config check only notes it."""
