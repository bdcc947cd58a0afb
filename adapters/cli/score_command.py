"""`adapters score`: relevance scores for every row of a file, in input order."""

from __future__ import annotations

from adapters.cli.common import add_base_option, add_column_options, add_registry_option, columns_from, positive_int
from adapters.config import INFERENCE_BATCH_SIZE
from adapters.precision import PRECISIONS

HELP = "score every row of a file with a version, alias or merged folder"
DESCRIPTION = (
    "Write the rows of --data with added columns score (expected label index, higher is more relevant), "
    "label (most likely label) and p_LABEL per label, in input order. Rows are scored in length-sorted, "
    "dynamically padded batches. The output format follows the suffix of --out: .csv or .jsonl. "
    "Where the CPU computes in bfloat16 natively (AMX or AVX512-BF16), the default --precision auto scores in "
    "bfloat16, which moves probabilities by about 0.01 at most; --precision fp32 gives float32 scores everywhere."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("target", metavar="TARGET", help="version id, alias, or merged model folder")
    parser.add_argument("--data", required=True, help="file to score (CSV, JSON Lines or Parquet); a label column is not needed")
    parser.add_argument("--out", required=True, help="output file, .csv or .jsonl")
    add_column_options(parser)
    parser.add_argument("--batch-size", type=positive_int, default=INFERENCE_BATCH_SIZE, help=f"rows per batch (default: {INFERENCE_BATCH_SIZE})")
    parser.add_argument("--max-length", type=positive_int, default=128, help="maximum tokens per pair; longer pairs are truncated (default: 128)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: bf16 where the CPU computes in bfloat16 natively, else fp32 (default: auto)")
    add_base_option(parser)


def run(args) -> int:
    from adapters.scoring import score_file
    from adapters.workflow import load_target

    target = load_target(args.registry, args.target, args.base)
    summary = score_file(target, args.data, columns_from(args), args.out, batch_size=args.batch_size, max_length=args.max_length,
                         precision=args.precision)
    print(f"scored {summary['rows']} rows in {summary['elapsed_s']:.2f} s ({summary['rows_per_s']:.1f} rows/s, {summary['precision']}) "
          f"into {summary['out']}")
    return 0
