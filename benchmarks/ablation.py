"""Does a speed feature change accuracy? Train the speed suite's LoRA increment with and without it at many seeds.

Each factor has two arms, both our training path on the rows, validation rows and settings stored in
benchmarks/RESULTS.json, differing only in that factor:

- dropout: FastDropout against torch's dropout modules;
- window: length groups sorted within 8 batches (the default) against 50 (transformers' Trainer).

Accuracy of a run does not depend on the machine's load, so this can run beside other work. Wall
times are recorded too, but they are only comparable when nothing else ran.

    .venv/bin/python benchmarks/ablation.py --factor window --seeds 42-48

The first call takes its settings from the speed results. Later calls resume from the factor's
JSON (benchmarks/<factor>-ablation.json) with the settings stored there and keep its runs, so an
interrupted call loses one run at most. The summary (per-seed accuracy, the mean difference and its
standard error) is printed, and `run_benchmarks.py --render` adds it to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from adapters.base import load_tokenizer, resolve_base
from adapters.bench import machine_facts, mean_and_standard_error, our_run
from adapters.bench_suite import _load_rows
from adapters.config import TrainConfig
from adapters.data import column_map
from adapters.errors import AdaptersError
from run_benchmarks import DEFAULT_DATA, ROOT, run_with_errors, seed_list, speed_data, stored_speed

# Each factor's two arms, as the training settings that set them; the first arm is the default.
FACTORS = {
    "dropout": {"FastDropout": {"fast_dropout": True}, "torch.nn.Dropout": {"fast_dropout": False}},
    "window": {"window 8": {"group_window": 8}, "window 50": {"group_window": 50}},
}
logger = logging.getLogger("ablation")


def summary(runs: dict, arms: list[str]) -> dict:
    """Pair the two arms by seed and return the per-seed accuracy differences (first arm minus second) in points."""
    seeds = sorted({run["seed"] for run in runs.values()})
    paired = [seed for seed in seeds if all(f"{arm}, seed {seed}" in runs for arm in arms)]
    accuracies = {arm: [runs[f"{arm}, seed {seed}"]["accuracy"] for seed in paired] for arm in arms}
    if not paired:
        return {"seeds": [], "arms": arms, "accuracies": accuracies, "differences_points": []}
    differences = [100 * (a - b) for a, b in zip(*accuracies.values())]
    mean, error = mean_and_standard_error(differences)
    return {"seeds": paired, "arms": arms, "accuracies": accuracies, "differences_points": differences, "mean_difference_points": mean,
            "standard_error_points": error, "means": {arm: sum(values) / len(values) for arm, values in accuracies.items()}}


def _settings_of(speed: dict) -> dict:
    """Take the data, rows, labels and training settings of a stored speed suite."""
    increment = speed["increment"]
    return {"data": speed["data"], "rows": increment["rows"], "validation_rows": increment["validation_rows"], "labels": speed["labels"],
            "config": {**speed["config"], "epochs": increment["epochs"]}}


def main() -> int:
    parser = argparse.ArgumentParser(prog="ablation", description=__doc__.splitlines()[0])
    parser.add_argument("--factor", choices=sorted(FACTORS), required=True, help="the speed feature whose two arms to compare")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"Home Depot train.csv (default: {DEFAULT_DATA})")
    parser.add_argument("--seeds", type=seed_list, default=seed_list("42-53"), help="seeds to train, as 42-53 or 42,45 (default: 42-53)")
    parser.add_argument("--speed-results", type=Path, default=ROOT / "benchmarks" / "RESULTS.json",
                        help="stored speed suite whose rows and settings to reuse (default: benchmarks/RESULTS.json)")
    parser.add_argument("--out", type=Path, help="where runs are kept and resumed from (default: benchmarks/<factor>-ablation.json)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work", help="scratch folder (default: benchmarks/work)")
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / f"{args.factor}-ablation.json"

    if not args.data.is_file():
        print(f"ablation: error: data file {args.data} not found; pass --data PATH", file=sys.stderr)
        return 2
    speed = None if out.is_file() else stored_speed(args.speed_results)
    if not out.is_file() and speed is None:
        print(f"ablation: error: {args.speed_results} contains no speed results; run benchmarks/run_benchmarks.py --only speed first",
              file=sys.stderr)
        return 2
    if out.is_dir() or not out.parent.is_dir():
        print(f"ablation: error: cannot write {out}: it is a folder or its folder does not exist; pass a file path as --out",
              file=sys.stderr)
        return 2
    try:
        stored = json.loads(out.read_text()) if out.is_file() else {}
    except ValueError:
        stored = None
    if not isinstance(stored, dict) or (stored and not {"runs", "config", "data"} <= set(stored)):
        print(f"ablation: error: {out} is not an ablation file written by this script; pass another --out or remove that file",
              file=sys.stderr)
        return 2
    if stored.get("factor", "dropout") != args.factor and stored:
        print(f"ablation: error: {out} contains the {stored.get('factor', 'dropout')} ablation, not {args.factor}; pass another --out",
              file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = stored or _settings_of(speed)
    columns = column_map("homedepot")
    config = replace(TrainConfig.from_dict(settings["config"]), method="lora", group_by_length=True)
    data_path = speed_data(args, columns)
    data, train, validation = _load_rows(data_path, columns, config, settings["rows"], settings["validation_rows"], "full")
    if data.fingerprint != settings["data"]["fingerprint"]:
        raise AdaptersError(f"data file {str(args.data)!r} differs from the one the ablation runs on "
                            f"(fingerprint {settings['data']['fingerprint']}); pass that file with --data")
    train = train.select(range(settings["rows"]))
    runs = stored.get("runs", {})
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ablation.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    commands = stored.get("commands", [])
    arms = FACTORS[args.factor]

    spec = resolve_base(None)
    tokenizer = load_tokenizer(spec)
    for seed in args.seeds:
        for arm, overrides in arms.items():
            name = f"{arm}, seed {seed}"
            if name in runs:
                continue
            figures, _ = our_run(spec, tokenizer, train, validation, settings["labels"], replace(config, seed=seed, **overrides))
            runs[name] = {"seed": seed, **overrides, "precision": figures["precision"], "accuracy": figures["accuracy"],
                          "wall_s": figures["wall_s"], "best_epoch": figures["best_epoch"], "epoch_accuracies": figures["epoch_accuracies"]}
            logger.info("%s: accuracy %.4f in %.1f s", name, figures["accuracy"], figures["wall_s"])
            if command not in commands:
                commands.append(command)
            stored = {"factor": args.factor, **{key: settings[key] for key in ("data", "rows", "validation_rows", "labels")},
                      "config": config.to_dict(),
                      "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commands": commands, "machine": machine_facts(),
                      "runs": runs, "summary": summary(runs, list(arms))}
            out.write_text(json.dumps(stored, indent=2) + "\n")

    result = summary(runs, list(arms))
    if not result["seeds"]:
        print("no seed has runs of both arms yet")
        return 0
    first, second = arms
    print(f"{len(result['seeds'])} seeds: {first} mean accuracy {result['means'][first]:.4f}, {second} {result['means'][second]:.4f}; "
          f"difference {result['mean_difference_points']:+.2f} points (standard error {result['standard_error_points']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_with_errors(main, "ablation"))
