"""Errors a user can act on. The CLI prints them as one line and exits non-zero, no traceback.

Messages name files, rows and fields, never a person's values.
"""


class UserError(Exception):
    """A problem with the user's input or invocation (exit code 2)."""

    exit_code = 2


class Problems(UserError):
    """Several problems found at once (a mapping file, a file's columns): the CLI prints the
    summary line, then one line per problem."""

    def __init__(self, summary: str, problems: list[str]):
        super().__init__(summary)
        self.problems = list(problems)


class WarehouseBusy(UserError):
    """Another levelcare process holds the warehouse's write lock (exit code 3)."""

    exit_code = 3


class ValidationFailed(UserError):
    """Error-severity validation failed; nothing from the offending file was loaded (exit code 4)."""

    exit_code = 4


def parse_yaml(text: str, where: object) -> object:
    """``text`` as YAML; a syntax error is a UserError naming ``where`` and the line."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{where}: not valid YAML{line}") from None


def one_line(text: object) -> str:
    """``text`` as one printable line: control characters (a newline in a file name, an escape
    sequence) are shown escaped, so an error stays one line and cannot drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
