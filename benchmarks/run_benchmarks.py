"""Regenerate benchmarks/RESULTS.md from the real Home Depot data.

The run splits the file by product_uid into increments, as if new products arrived over time, and
trains one adapter per increment (LoRA and AdaLoRA alternating). It merges them and evaluates every
version and merge on every increment's validation part next to the majority-class baseline. Then
it measures training, inference and merge throughput against the plain baseline loop. It calls the same library
functions as `adapters demo` and `adapters bench`.

    .venv/bin/python benchmarks/run_benchmarks.py --epochs 4 --merge 1,3   # the run behind RESULTS.md
    .venv/bin/python benchmarks/run_benchmarks.py --quick                   # a smaller run, a few minutes

With --reuse, the versions already trained in the work folder's registry are kept (only when their
increments match this run's settings), so evaluation and benchmarks can be repeated without
training again; the page then states that.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from adapters.base import resolve_base
from adapters.bench import format_merge_scaling, format_report, merge_scaling, run_benchmark
from adapters.config import TrainConfig
from adapters.data import column_map
from adapters.deploy import merge_versions
from adapters.evaluation import format_matrix, quality_matrix
from adapters.split import split_file
from adapters.workflow import load_merged_model, load_version_model, open_registry, train_increment

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "homedepot" / "train.csv"
logger = logging.getLogger("run_benchmarks")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"Home Depot train.csv (default: {DEFAULT_DATA})")
    parser.add_argument("--parts", type=int, default=3, help="increments to train (default: 3)")
    parser.add_argument("--rows-per-part", type=int, default=4000, help="rows kept from each increment (default: 4000)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per increment (default: 3)")
    parser.add_argument("--merge", action="append", default=[], metavar="IDS",
                        help="an extra merge to evaluate, as comma-separated version ids with equal weights; repeatable")
    parser.add_argument("--train-rows", type=int, default=1000, help="rows in the training throughput benchmark (default: 1000)")
    parser.add_argument("--inference-rows", type=int, default=2000, help="rows in the inference throughput benchmark (default: 2000)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work", help="scratch folder (default: benchmarks/work)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md", help="page to write")
    parser.add_argument("--reuse", action="store_true", help="keep versions already trained in the work folder")
    parser.add_argument("--quick", action="store_true", help="2 increments of 600 rows, 2 epochs, 256/512 benchmark rows")
    args = parser.parse_args()
    if args.quick:
        args.parts, args.rows_per_part, args.epochs, args.train_rows, args.inference_rows = 2, 600, 2, 256, 512
    return args


def train_versions(args, columns) -> tuple[list[Path], list[int], bool]:
    """Split and train, or reuse the versions of an earlier run with the same increments."""
    registry_root = args.work / "registry"
    increments = [args.work / "increments" / f"part-{index}.csv" for index in range(1, args.parts + 1)]
    if args.reuse and registry_root.is_dir() and all(path.is_file() for path in increments):
        versions = [v.id for v in open_registry(registry_root).versions() if v.manifest.get("data")]
        if len(versions) == args.parts:
            return increments, versions, True
    shutil.rmtree(args.work, ignore_errors=True)
    increments = split_file(args.data, args.work / "increments", by="product_uid", parts=args.parts,
                            encoding=columns.encoding, max_rows=args.rows_per_part)
    versions = []
    for index, path in enumerate(increments):
        config = TrainConfig(epochs=args.epochs, method="adalora" if index % 2 else "lora")
        versions.append(train_increment(registry_root, path, columns, config).id)
    return increments, versions, False


def main() -> int:
    args = parse_arguments()
    if not args.data.is_file():
        print(f"run_benchmarks: error: data file {args.data} not found; pass --data PATH", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run_benchmarks.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.perf_counter()
    columns = column_map("homedepot")

    increments, versions, reused = train_versions(args, columns)
    registry_root = args.work / "registry"
    registry = open_registry(registry_root)
    merges = {"merged (all, equal weights)": [str(v) for v in versions]}
    merges |= {f"merged ({', '.join(ids.split(','))})": ids.split(",") for ids in args.merge}
    targets = {f"version {v} ({registry.get(v).manifest['method']})": load_version_model(registry, str(v)) for v in versions}
    for index, (name, refs) in enumerate(merges.items()):
        out_dir = args.work / f"merged-{index}"
        merge_versions(registry_root, refs, out_dir, force=True)
        targets[name] = load_merged_model(out_dir)
    matrix = quality_matrix(targets, increments, columns)

    bench = run_benchmark(increments[0], columns, train_rows=args.train_rows, inference_rows=args.inference_rows,
                          config=replace(TrainConfig(), epochs=1), command=command)
    scaling = merge_scaling(resolve_base(None), list(bench["labels"]), counts=(2, 8) if args.quick else (2, 8, 32))
    report = {"command": command, "reused_versions": reused, "versions": versions, "merges": merges, "matrix": matrix,
              "bench": bench, "merge_scaling": scaling, "elapsed_s": time.perf_counter() - started}
    args.results.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    args.results.write_text(results_page(report, args, registry))
    print(f"wrote {args.results} in {report['elapsed_s'] / 60:.1f} min")
    return 0


def results_page(report: dict, args, registry) -> str:
    matrix = report["matrix"]
    trained = "reused from an earlier run of the same command in the same work folder" if report["reused_versions"] else "trained in this run"
    lines = [
        "# Measured results",
        "",
        f"Produced by `{report['command']}` in {report['elapsed_s'] / 60:.1f} minutes; the versions were {trained}, "
        "and every other number below comes from this one run.",
        "",
        "## Quality on real data",
        "",
        f"Data: the Home Depot search relevance file, sorted by `product_uid` and cut into {args.parts} increments, keeping "
        f"the first {args.rows_per_part} rows of each. Versions {', '.join(map(str, report['versions']))} were trained on "
        f"increments 1 to {args.parts} ({args.epochs} epochs each, LoRA and AdaLoRA alternating, every other option at its "
        "default). Each cell is measured on that increment's validation part, whose queries never appear in training.",
        "",
    ]
    for metric in ("accuracy", "macro_f1", "ndcg@10"):
        lines += [f"### Validation {metric}", "", format_matrix(matrix, metric), ""]
    lines += ["### Merged models against the majority class", ""]
    for name in report["merges"]:
        margins = [matrix[name][p]["accuracy"] - matrix[name][p]["majority_baseline_accuracy"] for p in matrix[name]]
        verdict = "beats" if all(m > 0 for m in margins) else "does not beat"
        described = ", ".join(f"{m * 100:+.1f}" for m in margins)
        lines.append(f"- `{name}` {verdict} the majority class on every increment (accuracy margins in points: {described}).")
    lines += ["", "## Throughput", "", format_report(report["bench"])]
    lines += ["", "## Merge time", "",
              "End-to-end `merge_versions` time in seconds (reading and verifying the versions, loading the base, the arithmetic, "
              "writing the folder or publishing the adapter), with the arithmetic alone in brackets. The adapters are random LoRA "
              "adapters of rank 8 on query and value with a head and pooler, published to a scratch registry; SVD keeps rank 8.", "",
              format_merge_scaling(report["merge_scaling"])]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
