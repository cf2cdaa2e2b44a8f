"""The error landscape analyses raise for requests a user can fix (one-line message, no traceback in the CLI)."""

from ..errors import AdvlandError


class LandscapeError(AdvlandError, ValueError):
    """An impossible analysis request: an unknown metric, a bad grid, mismatched models."""
