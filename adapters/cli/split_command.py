"""`adapters split`: cut one data file into N increments ordered by a column."""

from __future__ import annotations

from adapters.cli.common import columns_from, positive_int
from adapters.data import PRESETS
from adapters.split import split_file

HELP = "cut a data file into N increments ordered by a column"
DESCRIPTION = "Sort FILE by --by and write N nearly equal parts named part-1 to part-N, in FILE's format and encoding."


def add_arguments(parser) -> None:
    parser.add_argument("file", help="CSV, JSON Lines or Parquet file")
    parser.add_argument("--by", required=True, help="column that orders rows over time, e.g. product_uid")
    parser.add_argument("--parts", type=positive_int, required=True, help="number of increments")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="read the file with a preset's encoding")
    parser.add_argument("--encoding", help="text encoding of a CSV file (default: utf-8, or the preset's)")
    parser.add_argument("--max-rows", type=positive_int, help="keep only the first N rows of each part (default: all)")
    parser.add_argument("--force", action="store_true", help="overwrite existing part files")


def run(args) -> int:
    args.text_column = args.text_pair_column = args.label_column = None
    columns = columns_from(args)
    paths = split_file(args.file, args.out, by=args.by, parts=args.parts, encoding=columns.encoding, max_rows=args.max_rows, force=args.force)
    for path in paths:
        print(path)
    return 0
