"""`adapters merge`: fuse versions into one deployable model or one new adapter version."""

from __future__ import annotations

import argparse
import math

from adapters.cli.common import add_base_option, add_registry_option, format_table, positive_int
from adapters.config import MERGE_METHODS as METHODS

HELP = "merge versions into one deployable model or adapter"
DESCRIPTION = """\
Fuse VERSIONS into one model. Every adapted weight becomes W0 + merge(dW_1, ..., dW_n), where dW_i
is version i's exact weight update (LoRA: scaling * B @ A; AdaLoRA: B @ (A * E) * scaling / ranknum),
computed in float32 and cast once. LoRA and AdaLoRA versions of any ranks can be mixed, and a module
that some versions do not adapt gets a zero update from them.

Methods: linear = sum_i w_i * dW_i; task-arithmetic = lambda * sum_i w_i * dW_i; ties = trim each
w_i * dW_i to its top --density entries by magnitude, elect a sign per entry by summed mass and
average the entries that agree; dare = drop each entry of dW_i with probability --drop-rate, scale
the rest by 1 / (1 - p) (seeded by --seed), then sum as linear; dare-ties = that drop, then the TIES
sign election.

Weights: without --weights or --alpha every version gets 1/N for linear and 1 for the other methods.
Weights are used as given, also when they do not sum to 1: a sum above 1 amplifies the updates, and a
negative weight subtracts an update. The classification head and pooler are the normalised weighted
average sum_i w_i * head_i / sum_i w_i, so their weights must not sum to 0.

Output: a plain transformers folder (--out), or with --as-adapter a new registry version in peft's
LoRA format whose parents are VERSIONS: exact concatenates the factors (rank = sum of ranks; linear
methods only), svd truncates each merged dW to --rank R or to the --energy fraction and stores the
relative Frobenius error of every module. --dry-run prints the per-module norms and writes nothing."""


def add_arguments(parser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_registry_option(parser)
    parser.add_argument("versions", nargs="+", help="version ids or aliases, in merge order")
    parser.add_argument("--method", choices=METHODS, default="linear", help="merge method (default: linear)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--weights", type=_weights, help="comma-separated finite weights, one per version, e.g. 0.4,0.6")
    how.add_argument("--alpha", type=float, help="recursive fusion theta = (1 - alpha) * theta_old + alpha * theta_new over the versions in order; alpha in [0, 1]")
    parser.add_argument("--lambda", dest="scale", type=float, default=1.0, help="task-arithmetic scaling lambda (default: 1.0)")
    parser.add_argument("--density", type=float, default=0.2, help="ties: fraction of entries kept per update (default: 0.2)")
    parser.add_argument("--drop-rate", type=float, default=0.5, help="dare: probability of dropping an entry (default: 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="dare: seed of the drop masks (default: 0)")
    parser.add_argument("--as-adapter", choices=("exact", "svd"), help="publish a single LoRA adapter version instead of writing --out")
    parser.add_argument("--rank", type=positive_int, help="svd: rank kept per module")
    parser.add_argument("--energy", type=float, help="svd: keep the smallest rank whose singular values hold this fraction of sum S^2, e.g. 0.99")
    parser.add_argument("--out", help="output folder for the merged model (must be empty or absent)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    parser.add_argument("--dry-run", action="store_true", help="print per-module norms (and SVD errors) without writing anything")
    add_base_option(parser)


def _weights(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, e.g. 0.4,0.6") from None
    bad = [value for value in values if not math.isfinite(value)]
    if bad:
        raise argparse.ArgumentTypeError(f"{text!r} contains {bad[0]}; every weight must be a finite number")
    return values


def run(args) -> int:
    from adapters.deploy import merge_versions
    from adapters.merge_methods import MergeOptions

    options = MergeOptions(method=args.method, scale=args.scale, density=args.density, drop_rate=args.drop_rate, seed=args.seed)
    result = merge_versions(
        args.registry, args.versions, args.out, weights=args.weights, alpha=args.alpha, options=options,
        form=args.as_adapter or "dense", rank=args.rank, energy=args.energy, dry_run=args.dry_run, base=args.base, force=args.force,
    )
    weights = ", ".join(f"{version}: {weight:.6g}" for version, weight in zip(result.versions, result.weights))
    if args.dry_run:
        _print_modules(result)
        print(f"dry run: versions with weights {weights}; nothing was written")
        return 0
    if result.version is not None:
        print(f"merged versions with weights {weights} into adapter version {result.version} ({args.as_adapter}) in {result.elapsed_s:.2f} s")
        print(result.version)
        return 0
    print(f"merged versions with weights {weights} into {result.out_dir} in {result.elapsed_s:.2f} s (merge record {result.merge_id})")
    return 0


def _print_modules(result) -> None:
    headers = ["module"] + [f"|dW_{v}|" for v in result.versions] + ["|merged|"]
    with_svd = any("svd_relative_error" in figures for figures in result.modules.values())
    if with_svd:
        headers.append("svd error")
    rows = []
    for module, figures in result.modules.items():
        row = [module] + [f"{norm:.4g}" for norm in figures["delta_norms"]] + [f"{figures['merged_norm']:.4g}"]
        if with_svd:
            row.append(f"{figures['svd_relative_error']:.3g}")
        rows.append(row)
    print(format_table(headers, rows))
