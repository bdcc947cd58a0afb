"""`adapters import`: read versions from an archive written by `adapters export`."""

from __future__ import annotations

from pathlib import Path

from adapters.cli.common import add_registry_option

HELP = "import the versions of an export archive under new ids"
DESCRIPTION = (
    "Check every entry and checksum of FILE.tar, then add its versions to the registry under new ids, "
    "oldest first, and print each new id. The manifests keep their files and checksums and record the "
    "source registry and id in 'imported_from'. An archive with an entry outside versions/<id>/, a symlink, "
    "a device file or a damaged file is rejected before anything is written. A --registry folder that is "
    "new or empty becomes a new registry."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("archive", metavar="FILE.tar", help="archive written by `adapters export`")


def run(args) -> int:
    from adapters.store import open_registry
    from registry.archive import check_archive

    exists = bool(args.registry) and (Path(args.registry) / "registry.json").is_file()
    if args.registry and not exists:
        # Check the whole archive before creating a registry, so a bad archive leaves no empty registry behind.
        check_archive(args.archive)
    registry = open_registry(args.registry, create=not exists)
    for entry in registry.import_archive(args.archive):
        print(f"imported version {entry['source_id']} of {entry['source_registry']} as version {entry['id']}")
    return 0
