"""The error brightflow raises for input a user can fix."""

__all__ = ["InputError"]


class InputError(Exception):
    """A user's input file or setting cannot be used; the message says why and what to do."""
