"""`adapters export`: write versions into a tar archive for another registry."""

from __future__ import annotations

from pathlib import Path

from adapters.cli.common import add_registry_option

HELP = "write versions with their manifests and checksums into a tar file"
DESCRIPTION = (
    "Verify each VERSION and write it, with its manifest and checksums, into the new tar file --out. "
    "`adapters import` reads the file into another registry."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("versions", nargs="+", metavar="VERSION", help="version ids or aliases to export")
    parser.add_argument("--out", required=True, metavar="FILE.tar", help="path of the new archive; it must not exist yet")


def run(args) -> int:
    from adapters.store import open_registry

    ids = open_registry(args.registry).export(args.versions, args.out)
    size_bytes = Path(args.out).stat().st_size
    print(f"exported versions {', '.join(map(str, ids))} to {args.out} ({size_bytes} bytes)")
    return 0
