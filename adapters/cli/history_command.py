"""`adapters history`: every move of one alias."""

from __future__ import annotations

from adapters.cli.common import add_json_option, add_registry_option, format_moves, print_json

HELP = "print every move of an alias with time, from, to and reason"
DESCRIPTION = (
    "Print every promote and rollback of ALIAS, oldest first, with its UTC time, the version it moved from "
    "and to, and the reason given with --reason."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("alias", help="alias name, e.g. production")
    add_json_option(parser)


def run(args) -> int:
    from adapters.store import open_registry

    registry = open_registry(args.registry)
    moves = registry.alias_history(args.alias)
    if args.json:
        print_json({"alias": args.alias, "target": registry.aliases()[args.alias], "moves": moves})
        return 0
    print(f"alias {args.alias} points to version {registry.aliases()[args.alias]} after {len(moves)} moves")
    print(format_moves(moves))
    return 0
