"""`adapters show`: one version's manifest, AdaLoRA rank pattern and alias moves."""

from __future__ import annotations

from adapters.cli.common import (
    add_json_option,
    add_registry_option,
    format_moves,
    format_table,
    print_json,
)

HELP = "show one version"
DESCRIPTION = "Show a version's lineage, hyperparameters, metrics, files, AdaLoRA rank pattern and alias history."


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("version", help="version id or alias")
    add_json_option(parser)


def run(args) -> int:
    from adapters.store import open_registry

    registry = open_registry(args.registry)
    version = registry.get(args.version)
    aliases = sorted(name for name, target in registry.aliases().items() if target == version.id)
    history = [move for move in registry.alias_history() if version.id in (move.get("from"), move.get("to"))]
    if args.json:
        print_json({"manifest": version.manifest, "path": str(version.path), "aliases": aliases, "alias_history": history})
        return 0

    manifest = version.manifest
    validation = (manifest.get("metrics") or {}).get("validation") or {}
    data = manifest.get("data") or {}
    lines = [
        f"version {version.id} ({manifest.get('kind')}, {manifest.get('method')}), created {manifest.get('created')}",
        f"path: {version.path}",
        f"parent: {manifest.get('parent')}",
        f"aliases: {', '.join(aliases) or '-'}",
        f"base: {manifest['base']['id']} ({manifest['base']['fingerprint']})",
        f"labels: {', '.join(manifest.get('labels', []))}",
        f"data: {data.get('path')} ({data.get('fingerprint')})",
        f"rows: {data.get('rows')}",
        f"validation: accuracy {validation.get('accuracy', float('nan')):.4f}, macro F1 {validation.get('macro_f1', float('nan')):.4f}, "
        f"epoch {(manifest.get('metrics') or {}).get('best_epoch')}",
        "hyperparameters: " + ", ".join(f"{k}={v}" for k, v in _hyperparameters(manifest).items()),
        "files: " + ", ".join(f"{name} ({entry['bytes']} B, sha256 {entry['sha256'][:12]})" for name, entry in manifest["files"].items()),
    ]
    merge = manifest.get("merge")
    if merge:
        lines[2] = f"parents: {', '.join(map(str, manifest.get('parents') or []))} (merged)"
        lines[6:9] = [f"merge: {merge['options']['method']} ({merge['form']}), weights {merge['weights']}"]
    else:
        lines[7] = "rows: " + ", ".join(f"{key} {value}" for key, value in (data.get("rows") or {}).items())
    print("\n".join(lines))
    if merge and merge.get("form") == "svd":
        print("\nSVD relative error per module:")
        print(format_table(["module", "error"], [[m, f"{f['svd_relative_error']:.3g}"] for m, f in merge["modules"].items()]))
    adalora = manifest.get("adalora")
    if adalora:
        print(f"\nAdaLoRA schedule: total_step {adalora['total_step']}, tinit {adalora['tinit']}, tfinal {adalora['tfinal']}, "
              f"deltaT {adalora['deltaT']}, update_and_allocate calls {adalora['update_and_allocate_calls']}")
        print("rank pattern (kept rank per module):")
        print(format_table(["module", "rank"], [[name, rank] for name, rank in adalora["rank_pattern"].items()]))
    if history:
        print("\nalias moves")
        print(format_moves(history))
    return 0


def _hyperparameters(manifest: dict) -> dict:
    """Return the manifest's hyperparameters, with the precision that "auto" resolved to next to it."""
    values = dict(manifest.get("hyperparameters") or {})
    used = (manifest.get("training") or {}).get("precision")
    if values.get("precision") == "auto" and used:
        values["precision"] = f"auto ({used})"
    return values
