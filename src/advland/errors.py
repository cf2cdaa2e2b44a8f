"""The error raised for mistakes a user can fix; the CLI prints its one-line message, no traceback."""


class AdvlandError(Exception):
    """A user error: bad input, a missing file, an impossible request. The message says how to fix it."""


class ConfigError(AdvlandError):
    """A configuration the user wrote is invalid."""
