"""`adapters evaluate`: quality of versions, aliases or merged folders on increments."""

from __future__ import annotations

from pathlib import Path

from adapters.cli.common import (
    add_base_option,
    add_column_options,
    add_json_option,
    add_registry_option,
    columns_from,
    positive_int,
    print_json,
)
from adapters.config import EVALUATION_SPLITS as SPLITS
from adapters.config import INFERENCE_BATCH_SIZE

HELP = "evaluate versions, aliases or merged folders on increments"
DESCRIPTION = (
    "Compute accuracy, macro precision, recall and F1, per-class figures and nDCG@10 over queries for "
    "each TARGET on each --data increment. With several targets or files, print the matrix of targets "
    "by increments. The validation part of each increment is used unless --split says otherwise."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="version id, alias, or merged model folder")
    parser.add_argument("--data", nargs="+", required=True, help="increment files")
    add_column_options(parser)
    parser.add_argument("--split", choices=SPLITS, default="validation", help="which rows of each increment to score (default: validation)")
    parser.add_argument("--batch-size", type=positive_int, default=INFERENCE_BATCH_SIZE, help=f"rows per inference batch (default: {INFERENCE_BATCH_SIZE})")
    add_base_option(parser)
    add_json_option(parser)


def run(args) -> int:
    from adapters.evaluation import format_matrix, quality_matrix
    from adapters.workflow import load_target

    columns = columns_from(args)
    targets = {target: load_target(args.registry, target, args.base) for target in args.targets}
    matrix = quality_matrix(targets, args.data, columns, split=args.split, batch_size=args.batch_size)
    if args.json:
        print_json({"split": args.split, "matrix": matrix})
        return 0
    if len(args.targets) == 1 and len(args.data) == 1:
        _print_single(args.targets[0], args.data[0], matrix[args.targets[0]][args.data[0]])
        return 0
    for metric in ("accuracy", "macro_f1", "ndcg@10"):
        print(format_matrix(matrix, metric))
        print()
    return 0


def _print_single(target: str, path: str, metrics: dict) -> None:
    print(f"{target} on {Path(path).name} ({metrics['split']}, {metrics['n']} rows)")
    print(f"accuracy {metrics['accuracy']:.4f} (majority class {metrics['majority_baseline_accuracy']:.4f})")
    print(f"macro precision {metrics['macro_precision']:.4f}, recall {metrics['macro_recall']:.4f}, F1 {metrics['macro_f1']:.4f}")
    print(f"nDCG@10 {metrics['ndcg@10']:.4f}")
    for label, figures in metrics["per_class"].items():
        print(f"  {label}: precision {figures['precision']:.4f}, recall {figures['recall']:.4f}, F1 {figures['f1']:.4f}, support {figures['support']}")
