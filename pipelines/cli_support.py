"""What every `jouletrace` command shares: help that shows each option's default, `--version`, and failures
reported as one line per problem, never a traceback (`--debug` shows it).

Exit codes: 0 done; 1 a run that failed or whose result is not what was asked (a failed step or check, an
over-budget allocation, an unexpected error); 2 bad input (a file, folder, URL, table, column, row or option
that cannot be used: the line names it and says what to do), as argparse does for a bad option.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import warnings
from collections.abc import Iterator

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# Set while a command runs with --debug: pipelines.run then keeps Dagster's own logging (with tracebacks).
DEBUG_ENVIRONMENT = "JOULETRACE_DEBUG"
BAD_INPUT_OS_ERRORS = (
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    FileExistsError,
)


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option that has a default its help does not already state."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and shows_default(action, ""):  # argparse shows no help line for an empty help
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not shows_default(action, text):
            return text
        return f"{text} (default: %(default)s)".strip()


def shows_default(action: argparse.Action, text: str) -> bool:
    """Whether the formatter adds the default: options (and optional positionals) with a value default."""
    default = action.default
    if default is None or default is False or default is argparse.SUPPRESS or action.required:
        return False
    if "default" in text.lower():
        return False
    return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)


class Subcommands(argparse._SubParsersAction):
    """Sub-commands whose own --help starts with the line the command list shows, and which take --debug."""

    def add_parser(self, name: str, **kwargs):
        if kwargs.get("help") and "description" not in kwargs:
            kwargs["description"] = kwargs["help"]
        sub = super().add_parser(name, **kwargs)
        # `jouletrace validate --debug PATH` as well as `jouletrace --debug validate PATH`; SUPPRESS keeps
        # the top-level value when the sub-command is not given it.
        sub.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error"
        )
        return sub


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-commands (at every depth) are Parsers with the HelpFormatter."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", Subcommands)


class VersionAction(argparse.Action):
    """`--version`: the version is looked up only when asked for (reading the installed distributions'
    metadata takes ~0.1 s, which every other command would otherwise pay at start-up)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from schemas.tables import SCHEMA_VERSION

    try:
        number = version("jouletrace")
    except PackageNotFoundError:
        number = "unknown (not installed)"
    return f"jouletrace {number} (trace schema version {SCHEMA_VERSION})"


def failure(exc: BaseException) -> tuple[int, list[str]]:
    """The exit code and the lines (one per problem) that tell a user what went wrong."""
    import schemas

    if isinstance(exc, schemas.SchemaError):
        return EXIT_BAD_INPUT, [f"error: {problem}" for problem in exc.problems]
    if isinstance(exc, BAD_INPUT_OS_ERRORS):
        if exc.filename and exc.strerror:
            return EXIT_BAD_INPUT, [f"error: {exc.filename}: {exc.strerror}"]
        return EXIT_BAD_INPUT, _lines("error", str(exc))
    if isinstance(exc, UnicodeDecodeError):
        # Readers name the file; this is the net under one that does not.
        return EXIT_BAD_INPUT, [f"error: an input is not UTF-8 text ({exc}); save it as UTF-8"]
    if isinstance(exc, ValueError):
        return EXIT_BAD_INPUT, _lines("error", str(exc) or type(exc).__name__)
    if type(exc) is RuntimeError and str(exc):  # a run that failed, in its own words (the demo's steps)
        return EXIT_FAILED, _lines("failed", str(exc))
    lines = _lines("failed", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    lines[-1] += " (rerun with --debug to see the traceback)"
    return EXIT_FAILED, lines


def _lines(kind: str, text: str) -> list[str]:
    lines = [line for line in text.strip().splitlines() if line.strip()] or [text]
    return [f"{kind}: {lines[0]}", *[f"  {line.strip()}" for line in lines[1:]]]


@contextlib.contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Warnings (and the notes of safe coercions, schemas.SchemaNote) as one line each on stderr."""
    from schemas.loading import SchemaNote

    def show(message, category, filename, lineno, file=None, line=None):
        kind = "note" if issubclass(category, SchemaNote) else "warning"
        print(f"jouletrace {command}: {kind}: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", SchemaNote)
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def debug_environment(debug: bool) -> Iterator[None]:
    """JOULETRACE_DEBUG=1 while the command runs with --debug (restored after)."""
    before = os.environ.get(DEBUG_ENVIRONMENT)
    if debug:
        os.environ[DEBUG_ENVIRONMENT] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DEBUG_ENVIRONMENT, None)
        else:
            os.environ[DEBUG_ENVIRONMENT] = before


def debugging() -> bool:
    return os.environ.get(DEBUG_ENVIRONMENT, "") not in ("", "0")


def run_command(args: argparse.Namespace) -> int:
    """Run the chosen command: an error becomes its lines on stderr and exit code, or, with --debug, the
    traceback."""
    with debug_environment(args.debug):
        try:
            with one_line_warnings(args.command):
                return args.run(args)
        except KeyboardInterrupt:
            print(f"jouletrace {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:
            if args.debug:
                raise
            code, lines = failure(exc)
            for line in lines:
                print(f"jouletrace {args.command}: {line}", file=sys.stderr)
            return code
