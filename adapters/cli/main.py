"""Entry point of the `adapters` console script and of `python -m adapters`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from adapters import __version__
from adapters.errors import AdaptersError
from registry import RegistryError

SUBCOMMANDS = ("split", "train", "list", "show", "promote", "rollback", "history", "delete", "verify", "gc", "export", "import", "merge", "evaluate", "score", "bench", "demo")
EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="adapters",
        description="Train, version, merge and evaluate LoRA/AdaLoRA adapters for BERT ranking models, one data increment at a time.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"adapters.cli.{name.replace('-', '_')}_command")
        subparser = subparsers.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(subparser)
        subparser.set_defaults(handler=module.run)
    return parser


def configure_logging(verbose: bool, quiet: bool) -> None:
    """Log to stderr on the main process only; other processes log warnings and errors."""
    level = logging.INFO
    if verbose:
        level = logging.DEBUG
    elif quiet:
        level = logging.WARNING
    # torchrun and accelerate set RANK in every process they start; reading it avoids importing torch here.
    if int(os.environ.get("RANK", "0")) != 0:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "filelock", "urllib3", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        return args.handler(args) or 0
    except (AdaptersError, RegistryError) as error:
        print(f"adapters {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"adapters {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout (such as `head`) has closed it; route the final flush to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
