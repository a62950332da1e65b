"""Errors a user can act on. The CLI prints them as one line and exits non-zero, no traceback.

Messages name files, rows and fields, never a person's values.
"""


class UserError(Exception):
    """A problem with the user's input or invocation (exit code 2)."""

    exit_code = 2


class WarehouseBusy(UserError):
    """Another levelcare process holds the warehouse's write lock (exit code 3)."""

    exit_code = 3


class ValidationFailed(UserError):
    """Error-severity validation failed; nothing from the offending file was loaded (exit code 4)."""

    exit_code = 4


def one_line(text: object) -> str:
    """``text`` as one printable line: control characters (a newline in a file name, an escape
    sequence) are shown escaped, so an error stays one line and cannot drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
