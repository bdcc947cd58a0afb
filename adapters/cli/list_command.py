"""`adapters list`: versions, aliases and alias history of a registry."""

from __future__ import annotations

from adapters.cli.common import (
    add_json_option,
    add_registry_option,
    format_moves,
    format_table,
    print_json,
)

HELP = "list versions and aliases"
DESCRIPTION = "List every version with its method, data, validation accuracy and aliases, then the alias history."


def add_arguments(parser) -> None:
    add_registry_option(parser)
    add_json_option(parser)


def run(args) -> int:
    from adapters.store import open_registry

    registry = open_registry(args.registry)
    versions, aliases, history = registry.versions(), registry.aliases(), registry.alias_history()
    if args.json:
        print_json({
            "registry": str(registry.root),
            "labels": registry.labels,
            "versions": [version_summary(version, aliases) for version in versions],
            "aliases": aliases,
            "alias_history": history,
            "merges": registry.merges(),
        })
        return 0
    if not versions:
        print(f"registry {registry.root} has no versions yet")
        return 0
    rows = []
    for version in versions:
        summary = version_summary(version, aliases)
        rows.append([summary["id"], summary["method"], summary["created"], summary["parent"], summary["train_rows"],
                     _fixed(summary["validation_accuracy"]), ",".join(summary["aliases"])])
    print(format_table(["id", "method", "created", "parent", "train rows", "val acc", "aliases"], rows))
    if history:
        print("\nalias history")
        print(format_moves(history))
    return 0


def version_summary(version, aliases: dict[str, int]) -> dict:
    manifest = version.manifest
    rows = (manifest.get("data") or {}).get("rows") or {}
    return {
        "id": version.id,
        "kind": manifest.get("kind"),
        "method": manifest.get("method"),
        "created": manifest.get("created"),
        "parent": manifest.get("parent") if manifest.get("parents") is None else ",".join(map(str, manifest["parents"])),
        "train_rows": rows.get("train"),
        "validation_accuracy": ((manifest.get("metrics") or {}).get("validation") or {}).get("accuracy"),
        "aliases": sorted(name for name, target in aliases.items() if target == version.id),
    }


def _fixed(value) -> str:
    return "" if value is None else f"{value:.4f}"
