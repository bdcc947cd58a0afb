"""`adapters bench`: training, inference and merge throughput against a plain baseline."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.cli.common import (
    add_base_option,
    add_column_options,
    add_json_option,
    columns_from,
    positive_int,
    print_json,
)

HELP = "measure training, inference and merge throughput"
DESCRIPTION = (
    "Measure, in one run on the same data: one training epoch of our path against a baseline loop that "
    "pads every batch to max_length in float32; inference throughput of the base, the unmerged adapter "
    "and the merged model; and merge time for 2, 8 and 32 adapters (2 and 8 with --quick) in each output form. Without --data, a generated sample dataset is used. Writes "
    "results.json and results.md to --out."
)


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="folder for results.json and results.md")
    parser.add_argument("--data", help="data file (default: a generated sample in the Home Depot format)")
    add_column_options(parser)
    parser.add_argument("--train-rows", type=positive_int, default=1000, help="rows trained per training benchmark (default: 1000)")
    parser.add_argument("--inference-rows", type=positive_int, default=1000, help="rows scored per inference benchmark (default: 1000)")
    parser.add_argument("--quick", action="store_true", help="256 training and 512 scored rows, about a minute on 2 CPU cores")
    add_base_option(parser)
    add_json_option(parser)


def run(args) -> int:
    from adapters.base import resolve_base
    from adapters.bench import format_merge_scaling, format_report, merge_scaling, run_benchmark
    from adapters.sample import write_sample_csv

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        data = str(write_sample_csv(out / "sample.csv"))
        args.preset = args.preset or "homedepot"
    train_rows, inference_rows = (256, 512) if args.quick else (args.train_rows, args.inference_rows)
    results = run_benchmark(data, columns_from(args), train_rows=train_rows, inference_rows=inference_rows, base=args.base)
    counts = (2, 8) if args.quick else (2, 8, 32)
    results["merge_scaling"] = merge_scaling(resolve_base(args.base), list(results["labels"]), counts=counts)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report = format_report(results) + "\nMerge time by number of adapters and output form (end to end, then the arithmetic alone):\n\n"
    report += format_merge_scaling(results["merge_scaling"])
    (out / "results.md").write_text(report)
    if args.json:
        print_json(results)
    else:
        print(report, end="")
    return 0
