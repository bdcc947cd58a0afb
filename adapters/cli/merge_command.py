"""`adapters merge`: fuse versions into one deployable transformers model."""

from __future__ import annotations

import argparse
import math

from adapters.cli.common import add_base_option, add_registry_option

HELP = "merge versions into one deployable model"
DESCRIPTION = (
    "Fuse VERSIONS into one plain transformers model: every adapted weight becomes "
    "W0 + sum_i w_i * dW_i, where dW_i is version i's exact weight update (LoRA: scaling * B @ A; "
    "AdaLoRA: B @ (A * E) * scaling / ranknum). LoRA and AdaLoRA versions of any ranks can be mixed. "
    "A module that some versions do not adapt gets a zero update from them. Weights are used as given, "
    "also when they do not sum to 1: a sum above 1 amplifies the updates and a negative weight subtracts "
    "an update. The classification head is the weighted average sum_i w_i * head_i / sum_i w_i, so its "
    "weights must not sum to 0. Without --weights or --alpha every version gets weight 1/N."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("versions", nargs="+", help="version ids or aliases, in merge order")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--weights", type=_weights, help="comma-separated finite weights, one per version, e.g. 0.4,0.6")
    how.add_argument("--alpha", type=float, help="recursive fusion theta = (1 - alpha) * theta_old + alpha * theta_new over the versions in order; alpha in [0, 1]")
    parser.add_argument("--out", required=True, help="output folder for the merged model (must be empty or absent)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty output folder")
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

    result = merge_versions(args.registry, args.versions, args.out, weights=args.weights, alpha=args.alpha, base=args.base, force=args.force)
    weights = ", ".join(f"{version}: {weight:.6g}" for version, weight in zip(result.versions, result.weights))
    print(f"merged versions with weights {weights} into {result.out_dir} in {result.elapsed_s:.2f} s (merge record {result.merge_id})")
    return 0
