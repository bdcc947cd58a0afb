"""Regenerate benchmarks/RESULTS.md from one run on the real Home Depot data.

The run splits the file by product_uid into increments (new products arriving over time), trains
one adapter per increment (LoRA and AdaLoRA alternating), merges all of them, evaluates every model
on every increment's validation part next to the majority-class baseline, and measures training,
inference and merge throughput against the plain baseline loop. It calls the same library
functions as `adapters demo` and `adapters bench`.

    .venv/bin/python benchmarks/run_benchmarks.py            # the full run behind RESULTS.md
    .venv/bin/python benchmarks/run_benchmarks.py --quick    # a smaller run, a few minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

from adapters.base import resolve_base
from adapters.bench import format_merge_scaling, format_report, merge_scaling
from adapters.config import TrainConfig
from adapters.data import column_map
from adapters.demo import run_demo
from adapters.evaluation import format_matrix

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "homedepot" / "train.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"Home Depot train.csv (default: {DEFAULT_DATA})")
    parser.add_argument("--parts", type=int, default=3, help="increments to train (default: 3)")
    parser.add_argument("--rows-per-part", type=int, default=4000, help="rows kept from each increment (default: 4000)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per increment (default: 3)")
    parser.add_argument("--train-rows", type=int, default=1000, help="rows in the training throughput benchmark (default: 1000)")
    parser.add_argument("--inference-rows", type=int, default=2000, help="rows in the inference throughput benchmark (default: 2000)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work", help="scratch folder (default: benchmarks/work)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md", help="page to write")
    parser.add_argument("--quick", action="store_true", help="2 increments of 600 rows, 2 epochs, 256/512 benchmark rows")
    args = parser.parse_args()
    if args.quick:
        args.parts, args.rows_per_part, args.epochs, args.train_rows, args.inference_rows = 2, 600, 2, 256, 512
    if not args.data.is_file():
        print(f"run_benchmarks: error: data file {args.data} not found; pass --data PATH", file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run_benchmarks.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.perf_counter()
    report = run_demo(args.work, args.data, column_map("homedepot"), parts=args.parts, rows_per_part=args.rows_per_part,
                      config=TrainConfig(epochs=args.epochs), bench_rows=(args.train_rows, args.inference_rows))
    report["bench"]["command"] = command
    report["merge_scaling"] = merge_scaling(resolve_base(None), list(report["bench"]["labels"]), counts=(2, 8) if args.quick else (2, 8, 32))
    report["elapsed_s"] = time.perf_counter() - started
    (args.results.with_suffix(".json")).write_text(json.dumps(report, indent=2, default=str) + "\n")
    args.results.write_text(results_page(report, args, command))
    print(f"wrote {args.results} in {report['elapsed_s'] / 60:.1f} min")
    return 0


def results_page(report: dict, args, command: str) -> str:
    matrix = report["matrix"]
    beats = all(
        metrics["accuracy"] > metrics["majority_baseline_accuracy"] for metrics in matrix["merged"].values()
    )
    lines = [
        "# Measured results",
        "",
        f"Produced by `{command}` in {report['elapsed_s'] / 60:.1f} minutes; every number below comes from that one run.",
        "",
        "## Quality on real data",
        "",
        f"Data: the Home Depot search relevance file, sorted by `product_uid` and cut into {args.parts} increments, "
        f"keeping the first {args.rows_per_part} rows of each. Versions {', '.join(map(str, report['versions']))} were "
        f"trained on increments 1 to {args.parts} ({args.epochs} epochs each, LoRA and AdaLoRA alternating); `merged` is "
        "their equal-weight merge. Each cell is measured on that increment's validation part (queries never seen in training).",
        "",
    ]
    for metric in ("accuracy", "macro_f1", "ndcg@10"):
        lines += [f"### Validation {metric}", "", format_matrix(matrix, metric), ""]
    verdict = "beats" if beats else "does not beat"
    lines += [f"The merged model {verdict} the majority-class baseline on every increment's validation part.", ""]
    lines += ["## Throughput", "", format_report(report["bench"])]
    lines += ["", "## Merge time", "",
              "End-to-end `merge_versions` time in seconds (reading and verifying the versions, loading the base, the arithmetic, "
              "writing the folder or publishing the adapter), with the arithmetic alone in brackets. The adapters are random LoRA "
              "adapters of rank 8 on query and value with a head and pooler, published to a scratch registry; SVD keeps rank 8.", "",
              format_merge_scaling(report["merge_scaling"])]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
