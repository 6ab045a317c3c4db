"""The `reprl` command: one entry point, a subcommand per job.

Each subcommand lives in reprl/commands/<name>.py with HELP, add_arguments(parser) and run(args, extra).
Those modules import nothing heavy at import time, so `reprl --help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from typing import Any, NoReturn

from reprl.errors import ReprlError

COMMANDS = ("shards", "render", "stream", "pretrain", "score", "embed", "convert", "eval", "heads", "bench", "list")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps descriptions as written and shows every option's default (not the empty ones: None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS \
                or "default" in text:
            return text
        return super()._get_help_string(action) or text


def precision(text: str) -> str:
    """--precision, one vocabulary for every command: 32 | bf16 | 16 (Lightning's '-mixed' names accepted)."""
    from reprl.utils.precision import normalize_precision

    try:
        return normalize_precision(text)
    except ReprlError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _finish(p: argparse.ArgumentParser) -> None:
    """Every (sub)command: defaults in --help, -q accepted after the subcommand name too, and option names only
    as written: argparse would otherwise take an unambiguous prefix (`--force` for `--force-overwrite`), so a
    shortened or mistyped option could turn on one that deletes an output folder."""
    p.formatter_class = HelpFormatter
    p.allow_abbrev = False
    for a in p._actions:  # argparse prints no help line, hence no default, for options without help text
        if not a.help and a.option_strings and a.default not in (None, False, argparse.SUPPRESS):
            a.help = "(default: %(default)s)"
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subs:
        for child in set(action.choices.values()):
            _finish(child)
    if not subs and not any("-q" in a.option_strings for a in p._actions):
        p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings and errors")


class OneLineParser(argparse.ArgumentParser):
    """A parse error is one line naming the command and its --help (argparse prints the whole usage first).
    Subcommand parsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import reprl

    parser = OneLineParser(prog="reprl", description="Pretrain and use value-based representations "
                           "for robots (VIP, LIV, R3M).", allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"reprl {reprl.__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"reprl.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"reprl.commands.{name}":
                continue  # not built yet
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__, formatter_class=HelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _overrides=getattr(mod, "ACCEPTS_OVERRIDES", False))
        _finish(p)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not args._overrides:  # one line that names the command (argparse would print the top usage)
        sub = [getattr(args, a) for a in ("what", "action") if getattr(args, a, None)]  # bench data, heads train
        name = " ".join(["reprl", args.command, *sub])
        print(f"reprl {args.command}: error: unrecognized arguments: {' '.join(extra)} (options are taken only as "
              f"written; see {name} --help)", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    terminated: list[int] = []

    def terminate(signum: int, frame: Any) -> None:  # `kill`, a job scheduler: unwind as Ctrl-C does, so staging
        terminated.append(signum)  # folders are removed and a run says where it stopped
        raise KeyboardInterrupt

    # not for training (pretrain, bench train): Lightning handles SIGTERM itself, stopping every process of a run
    # together at a step boundary (and requeueing under SLURM); nor where the handler in place is not Python's
    before = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if before is not None and args.command not in ("pretrain", "bench"):
        signal.signal(signal.SIGTERM, terminate)
    else:
        before = None
    try:
        code = args._run(args, extra)
        sys.stdout.flush()  # here, not in Python's exit, so that a closed pipe meets the handler below
    except ReprlError as e:
        print(f"reprl {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"reprl {args.command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM if terminated else 130)
    except BrokenPipeError:
        if not _reader_gone(sys.stdout):
            raise  # another pipe (a worker process's): a fault, not the user's pager
        # the reader of stdout stopped early (`reprl ... | head`): end quietly with the status a shell gives a
        # command killed by SIGPIPE (128 + 13), as `cat file | head` does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's final flush of stdout would raise again
        sys.exit(141)
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
    sys.exit(code or 0)


def _reader_gone(stream: Any) -> bool:
    """Whether `stream` writes to a pipe whose reading end is closed (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's capture) or no poll
        return False
