"""`adapters rollback`: move an alias back to its previous target."""

from __future__ import annotations

from adapters.cli.common import add_registry_option

HELP = "move an alias back to its previous target"
DESCRIPTION = (
    "Move ALIAS back to the target it had before its latest promotion, or to --to VERSION, an earlier "
    "target. Only the pointer moves; no weights are copied."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("--alias", required=True, help="alias name, e.g. production")
    parser.add_argument("--to", metavar="VERSION", help="an earlier target of the alias to return to")
    parser.add_argument("--reason", help="free text stored with the move")


def run(args) -> int:
    from adapters.store import open_registry

    move = open_registry(args.registry).rollback(args.alias, to=args.to, reason=args.reason)
    print(f"{move['alias']}: {move['from']} -> {move['to']}")
    return 0
