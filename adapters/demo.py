"""The end-to-end demo: split, train, merge, evaluate, promote, roll back and benchmark.

It calls the same library functions as the subcommands, in the order a search team would use them,
and writes a markdown and JSON report of what it measured.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

from adapters.bench_report import format_suite
from adapters.bench_suite import SIZES, BenchSize, run_suite
from adapters.config import TrainConfig
from adapters.data import ColumnMap
from adapters.deploy import merge_versions
from adapters.errors import AdaptersError
from adapters.evaluation import format_matrix, quality_matrix
from adapters.sample import write_sample_csv
from adapters.split import split_file
from adapters.workflow import (
    load_merged_model,
    load_version_model,
    open_registry,
    train_increment,
)

logger = logging.getLogger(__name__)

MARKER = ".adapters-demo"


def prepare_out_dir(out_dir: Path) -> None:
    """Create `out_dir`, replacing an earlier demo's folder but never a folder the demo did not make."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file():
            raise AdaptersError(f"{str(out_dir)!r} is not empty and was not made by `adapters demo`; choose another --out")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("made by adapters demo; the next demo run may delete this folder\n")


def run_demo(
    out_dir: str | Path,
    data_path: str | Path | None,
    columns: ColumnMap,
    *,
    parts: int = 3,
    rows_per_part: int | None = 800,
    config: TrainConfig | None = None,
    base: str | None = None,
    bench: bool = True,
    bench_size: BenchSize = SIZES["demo"],
    echo=print,
) -> dict:
    """Run the whole product path and return its report: versions, aliases, quality matrix, benchmark.

    `bench_size` sets how much the benchmark step measures.
    """
    out_dir = Path(out_dir)
    config = config or TrainConfig()
    prepare_out_dir(out_dir)
    if data_path is None:
        data_path = write_sample_csv(out_dir / "sample.csv")
        echo(f"1. Wrote a generated sample dataset to {data_path}")
    increments = split_file(data_path, out_dir / "increments", by=_order_column(data_path, columns), parts=parts,
                            encoding=columns.encoding, max_rows=rows_per_part)
    echo(f"2. Split {data_path} into {len(increments)} increments: {', '.join(p.name for p in increments)}")

    registry_root = out_dir / "registry"
    versions = []
    for index, path in enumerate(increments):
        method = "adalora" if index % 2 == 1 else "lora"
        version = train_increment(registry_root, path, columns, replace(config, method=method), base=base)
        versions.append(version.id)
        echo(f"3. Trained {method} on {path.name}: version {version.id}, validation accuracy "
             f"{version.manifest['metrics']['validation']['accuracy']:.4f}")

    registry = open_registry(registry_root)
    registry.promote("production", versions[0], reason="first increment")
    registry.promote("production", versions[-1], reason="latest increment")
    echo(f"4. Promoted production to version {versions[0]}, then to version {versions[-1]}")

    merged_dir = out_dir / "merged"
    merge = merge_versions(registry_root, [str(v) for v in versions], merged_dir, base=base)
    echo(f"5. Merged versions {merge.versions} with weights {[round(w, 4) for w in merge.weights]} into {merged_dir}")

    targets = {f"version {v}": load_version_model(registry, str(v), base) for v in versions}
    targets["merged"] = load_merged_model(merged_dir)
    matrix = quality_matrix(targets, increments, columns, validation_fraction=config.validation_fraction)
    echo("6. Validation accuracy of every model on every increment:\n" + format_matrix(matrix, "accuracy"))

    move = registry.rollback("production", reason="demo rollback")
    echo(f"7. Rolled production back from version {move['from']} to version {move['to']}")

    bench_results = None
    if bench:
        bench_results = run_suite(increments[0], columns, bench_size, base=base, config=config, command="adapters demo")
        echo("8. Benchmark:\n" + format_suite(bench_results))

    report = {"data": str(data_path), "increments": [str(p) for p in increments], "versions": versions,
              "aliases": registry.aliases(), "alias_history": registry.alias_history(), "matrix": matrix, "bench": bench_results}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out_dir / "report.md").write_text(_report_markdown(report))
    echo(f"Report written to {out_dir / 'report.md'}")
    return report


def _order_column(data_path, columns: ColumnMap) -> str:
    # The Home Depot format, which the generated sample shares, orders products by product_uid.
    return "product_uid" if columns.text == "search_term" else "id"


def _report_markdown(report: dict) -> str:
    sections = ["# Demo report", "", f"Data: `{report['data']}`, increments: " + ", ".join(f"`{Path(p).name}`" for p in report["increments"]), ""]
    for metric in ("accuracy", "macro_f1", "ndcg@10"):
        sections += [f"## Validation {metric}", "", format_matrix(report["matrix"], metric), ""]
    if report["bench"]:
        sections += ["## Benchmark", "", format_suite(report["bench"])]
    return "\n".join(sections)
