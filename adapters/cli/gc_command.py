"""`adapters gc`: remove what crashed publishes, imports and deletes left behind."""

from __future__ import annotations

from adapters.cli.common import add_registry_option

HELP = "remove the leftovers of crashed publishes, imports and deletes"
DESCRIPTION = (
    "Remove the staging folders and temporary files of registry processes on this host that have exited, "
    "and the folders of deleted versions that an interrupted delete left behind. Work of running processes "
    "and every version that is not deleted stay."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)


def run(args) -> int:
    from adapters.store import open_registry

    registry = open_registry(args.registry)
    removed = registry.gc()
    for path in removed:
        print(f"removed {path}")
    print(f"removed {len(removed)} leftovers from {registry.root}")
    return 0
