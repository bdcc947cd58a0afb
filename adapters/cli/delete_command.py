"""`adapters delete`: delete a version that nothing refers to any more."""

from __future__ import annotations

from adapters.cli.common import add_registry_option

HELP = "delete a version (rejected while an alias, a merge or another version refers to it)"
DESCRIPTION = (
    "Delete VERSION and record a tombstone with the time, the reason and whether --force was used. The "
    "delete is rejected while an alias points to the version, a merge record lists it, or another version "
    "names it as parent, unless --force is given. Deleted ids are never reused, and aliases cannot be "
    "rolled back to a deleted version."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("version", help="version id or alias to delete")
    parser.add_argument("--force", action="store_true", help="delete even though something refers to the version; the references are recorded")
    parser.add_argument("--reason", help="free text stored in the tombstone (one line, at most 500 characters)")


def run(args) -> int:
    from adapters.store import open_registry

    tombstone = open_registry(args.registry).delete(args.version, force=args.force, reason=args.reason)
    if tombstone["referrers"]:
        print(f"deleted version {tombstone['id']} with --force although {'; '.join(tombstone['referrers'])}")
    else:
        print(f"deleted version {tombstone['id']}")
    return 0
