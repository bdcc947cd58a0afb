"""Error and warning classes for mistakes a user can fix."""


class AdaptersError(Exception):
    """A user-fixable problem: bad input, a missing file, a conflicting option.

    The message is one line that names the offending value and the fix. The CLI prints it without
    a traceback and exits with status 2.
    """


class AdaptersWarning(UserWarning):
    """A recoverable user mistake that the toolkit works around, such as a weight list not summing to 1."""
