"""`adapters bench`: the benchmark suite, our path against plain baselines on the same data."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.cli.common import (
    add_base_option,
    add_column_options,
    add_json_option,
    columns_from,
    print_json,
)
from adapters.errors import AdaptersError

HELP = "measure training, inference and merging against plain baselines"
DESCRIPTION = (
    "Measure, in one run on the same data: a whole increment trained by peft's documented loop (padded to "
    "max_length, float32) and by our path (LoRA, AdaLoRA, frozen prefix with cache; the full size at two more seeds), thread counts, "
    "torch's dropout against the fast dropout, bfloat16, "
    "cost against increment size, base against merged inference, batch scoring against transformers.pipeline, "
    "training peak memory as the registry grows, and merge time against the number of adapters. "
    "--quick takes about 5 minutes on 2 CPU cores; the full size trains 4,000 rows for 3 epochs per run and "
    "takes 45 to 80 minutes (less where the CPU computes in bfloat16 natively). Without --data, a generated sample in the Home Depot format is used. Writes "
    "results.json (after every section), results.md and PNG plots to --out."
)

SAMPLE_ROWS = {"quick": 3000, "full": 11000}


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="folder for results.json, results.md and the plots")
    parser.add_argument("--data", help="data file (default: a generated sample in the Home Depot format)")
    add_column_options(parser)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: 320 rows for 1 epoch per run, about 5 minutes; --data needs 2,000 training rows (8,000 without --quick)")
    add_base_option(parser)
    add_json_option(parser)


def run(args) -> int:
    from adapters.bench_report import format_suite, write_plots
    from adapters.bench_suite import SIZES, run_suite
    from adapters.sample import write_sample_csv

    size = SIZES["quick" if args.quick else "full"]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise AdaptersError(f"--out {str(out)!r} is a file; pass a folder")
    data = args.data
    if data is None:
        data = str(write_sample_csv(out / "sample.csv", n_rows=SAMPLE_ROWS[size.name]))
        args.preset = args.preset or "homedepot"

    # The folder is made at the first saved section, so a run rejected for its input writes nothing.
    # A results.md from an earlier run is removed at the first save, so it never sits beside newer results.json.
    def save(results: dict) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").unlink(missing_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    results = run_suite(data, columns_from(args), size, base=args.base, checkpoint=save)
    save(results)
    report = "# Benchmark\n\n" + format_suite(results)
    plots = write_plots(results, out)
    if plots:
        report += "\n" + "\n".join(f"![{path.stem}]({path.name})" for path in plots) + "\n"
    (out / "results.md").write_text(report)
    if args.json:
        print_json(results)
    else:
        print(report, end="")
    return 0
