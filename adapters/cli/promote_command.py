"""`adapters promote`: point an alias at a version."""

from __future__ import annotations

from adapters.cli.common import add_registry_option

HELP = "point an alias such as production at a version"
DESCRIPTION = "Point ALIAS at VERSION. The move is appended to the alias history, so it can be rolled back."


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("version", help="version id or alias to promote")
    parser.add_argument("--alias", required=True, help="alias name, e.g. production")
    parser.add_argument("--reason", help="free text stored with the move")


def run(args) -> int:
    from adapters.store import open_registry

    move = open_registry(args.registry).promote(args.alias, args.version, reason=args.reason)
    print(f"{move['alias']}: {move['from'] if move['from'] is not None else '-'} -> {move['to']}")
    return 0
