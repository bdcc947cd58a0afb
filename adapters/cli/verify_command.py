"""`adapters verify`: recompute the checksums of one version or of every version."""

from __future__ import annotations

from adapters.cli.common import add_json_option, add_registry_option, print_json

EXIT_DAMAGED = 1

HELP = "recompute the checksums of stored versions (exit status 1 if any is damaged)"
DESCRIPTION = (
    "Recompute the size and sha256 of every file of VERSION, or of every version, and compare them with "
    "the manifest, which is itself checked against its own sha256. Each damaged file is printed with its "
    "version. Exit status: 0 when every checked version matches its manifest; 1 when a file changed, was "
    "truncated, is missing, is a symlink or is not listed, or a manifest is invalid; 2 for a usage error "
    "such as an unknown version."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("version", nargs="?", help="version id or alias to verify (default: every version)")
    add_json_option(parser)


def run(args) -> int:
    from adapters.store import open_registry

    registry = open_registry(args.registry)
    checks = registry.check(args.version)
    damaged = [check for check in checks if not check.ok]
    if args.json:
        print_json({
            "registry": str(registry.root),
            "ok": not damaged,
            "versions": [
                {"id": check.id, "path": str(check.path), "ok": check.ok, "problems": check.problems, "details": check.details}
                for check in checks
            ],
        })
        return EXIT_DAMAGED if damaged else 0

    for check in damaged:
        for detail in check.details:
            print(f"version {check.id}: {detail}")
    if not checks:
        print(f"registry {registry.root} has no versions to verify")
    elif damaged:
        print(
            f"{len(damaged)} of {len(checks)} versions failed verification; restore their files from a backup, "
            "or delete them with `adapters delete VERSION` and publish them again"
        )
    else:
        files = sum(len(registry.get(check.id).manifest["files"]) for check in checks)
        print(f"verified {len(checks)} versions ({files} files): every file matches its manifest")
    return EXIT_DAMAGED if damaged else 0
