"""The `reprl` command: one entry point, a subcommand per job.

Each subcommand lives in reprl/commands/<name>.py with HELP, add_arguments(parser) and run(args, extra).
Those modules import nothing heavy at import time, so `reprl --help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from reprl.errors import ReprlError

COMMANDS = ("shards", "render", "stream", "pretrain", "score", "embed", "convert", "eval", "bench", "list")


def build_parser() -> argparse.ArgumentParser:
    import reprl

    parser = argparse.ArgumentParser(prog="reprl", description="Pretrain and use value-based representations "
                                     "for robots (VIP, LIV, R3M).")
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
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _overrides=getattr(mod, "ACCEPTS_OVERRIDES", False))
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not args._overrides:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    try:
        code = args._run(args, extra)
    except ReprlError as e:
        print(f"reprl {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"reprl {args.command}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
