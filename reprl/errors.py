"""One exception type for problems a user can fix: the CLI prints its message without a traceback."""


class ReprlError(Exception):
    """A bad input or setting. The message says what was wrong and what to do."""
