"""`adapters demo`: the whole product path on sample or real data."""

from __future__ import annotations

from adapters.cli.common import (
    add_base_option,
    add_column_options,
    columns_from,
    positive_int,
)

HELP = "run the whole path: split, train, merge, evaluate, promote, roll back, benchmark"
DESCRIPTION = (
    "Split a data file into increments, train one adapter per increment (LoRA and AdaLoRA alternating), "
    "promote, merge, evaluate every model on every increment, roll back, and run a short benchmark. "
    "Without --data, a generated sample dataset in the Home Depot format is used; "
    "`--data train.csv --preset homedepot` runs it on the real Home Depot file."
)


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="demo-run", help="folder for the demo's files; an earlier demo's folder is replaced (default: demo-run)")
    parser.add_argument("--data", help="data file with a product_uid column (default: a generated sample)")
    add_column_options(parser)
    parser.add_argument("--parts", type=positive_int, default=3, help="number of increments (default: 3)")
    parser.add_argument("--rows-per-part", type=int, default=800, help="rows kept from each increment, 0 for all (default: 800)")
    parser.add_argument("--epochs", type=positive_int, default=3, help="training epochs per increment (default: 3)")
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmark step")
    add_base_option(parser)


def run(args) -> int:
    from adapters.config import TrainConfig
    from adapters.demo import run_demo

    if args.data is None:
        args.preset = args.preset or "homedepot"
    run_demo(args.out, args.data, columns_from(args), parts=args.parts, rows_per_part=args.rows_per_part or None,
             config=TrainConfig(epochs=args.epochs), base=args.base, bench=not args.no_bench)
    return 0
