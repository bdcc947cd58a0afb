"""Does FastDropout change accuracy? Train the speed suite's LoRA increment with each dropout at many seeds.

Both arms are our training path with length-grouped batches on the rows, validation rows and settings
stored in benchmarks/RESULTS.json. They differ only in the dropout modules. Accuracy of a run does
not depend on the machine's load, so this can run beside other work. Wall times are recorded too,
but they are only comparable when nothing else ran.

    .venv/bin/python benchmarks/dropout_ablation.py --seeds 42-53

The first call takes its settings from the speed results. Later calls resume from the ablation's
JSON with the settings stored there and keep its runs, so an interrupted call loses one run at most.
The summary (per-seed accuracy, the mean difference and its standard error) is printed, and
`run_benchmarks.py --render` adds it to RESULTS.md.
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
from run_benchmarks import DEFAULT_DATA, ROOT, run_with_errors, seed_list, speed_data
ARMS = {"FastDropout": True, "torch.nn.Dropout": False}
logger = logging.getLogger("dropout_ablation")


def summary(runs: dict) -> dict:
    """Pair the arms by seed and return the per-seed accuracy differences (fast minus torch) in points."""
    seeds = sorted({run["seed"] for run in runs.values()})
    paired = [seed for seed in seeds if all(f"{arm}, seed {seed}" in runs for arm in ARMS)]
    fast = [runs[f"FastDropout, seed {seed}"]["accuracy"] for seed in paired]
    plain = [runs[f"torch.nn.Dropout, seed {seed}"]["accuracy"] for seed in paired]
    differences = [100 * (a - b) for a, b in zip(fast, plain)]
    if not paired:
        return {"seeds": [], "fast": [], "torch": [], "differences_points": []}
    mean, error = mean_and_standard_error(differences)
    return {"seeds": paired, "fast": fast, "torch": plain, "differences_points": differences, "mean_difference_points": mean,
            "standard_error_points": error, "mean_fast": sum(fast) / len(fast), "mean_torch": sum(plain) / len(plain)}


def _settings_of(speed: dict) -> dict:
    """Take the data, rows, labels and training settings of a stored speed suite."""
    increment = speed["increment"]
    return {"data": speed["data"], "rows": increment["rows"], "validation_rows": increment["validation_rows"], "labels": speed["labels"],
            "config": {**speed["config"], "epochs": increment["epochs"]}}


def main() -> int:
    parser = argparse.ArgumentParser(prog="dropout_ablation", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"Home Depot train.csv (default: {DEFAULT_DATA})")
    parser.add_argument("--seeds", type=seed_list, default=seed_list("42-53"), help="seeds to train, as 42-53 or 42,45 (default: 42-53)")
    parser.add_argument("--speed-results", type=Path, default=ROOT / "benchmarks" / "RESULTS.json",
                        help="stored speed suite whose rows and settings to reuse (default: benchmarks/RESULTS.json)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "dropout-ablation.json",
                        help="where runs are kept and resumed from (default: benchmarks/dropout-ablation.json)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work", help="scratch folder (default: benchmarks/work)")
    args = parser.parse_args()

    if not args.data.is_file():
        print(f"dropout_ablation: error: data file {args.data} not found; pass --data PATH", file=sys.stderr)
        return 2
    if not args.out.is_file() and (not args.speed_results.is_file() or "speed" not in json.loads(args.speed_results.read_text())):
        print(f"dropout_ablation: error: {args.speed_results} holds no speed results; run benchmarks/run_benchmarks.py --only speed first",
              file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stored = json.loads(args.out.read_text()) if args.out.is_file() else {}
    settings = stored or _settings_of(json.loads(args.speed_results.read_text())["speed"])
    columns = column_map("homedepot")
    config = replace(TrainConfig.from_dict(settings["config"]), method="lora", group_by_length=True)
    data_path = speed_data(args, columns)
    data, train, validation = _load_rows(data_path, columns, config, settings["rows"], settings["validation_rows"], "full")
    if data.fingerprint != settings["data"]["fingerprint"]:
        raise AdaptersError(f"data file {str(args.data)!r} differs from the one the ablation runs on "
                            f"(fingerprint {settings['data']['fingerprint']}); pass that file with --data")
    train = train.select(range(settings["rows"]))
    runs = stored.get("runs", {})
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/dropout_ablation.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    commands = stored.get("commands", [stored["command"]] if "command" in stored else [])

    spec = resolve_base(None)
    tokenizer = load_tokenizer(spec)
    for seed in args.seeds:
        for arm, fast in ARMS.items():
            name = f"{arm}, seed {seed}"
            if name in runs:
                continue
            figures, _ = our_run(spec, tokenizer, train, validation, settings["labels"], replace(config, seed=seed, fast_dropout=fast))
            runs[name] = {"seed": seed, "fast_dropout": fast, "precision": figures["precision"], "accuracy": figures["accuracy"],
                          "wall_s": figures["wall_s"], "best_epoch": figures["best_epoch"], "epoch_accuracies": figures["epoch_accuracies"]}
            logger.info("%s: accuracy %.4f in %.1f s", name, figures["accuracy"], figures["wall_s"])
            if command not in commands:
                commands.append(command)
            stored = {**{key: settings[key] for key in ("data", "rows", "validation_rows", "labels", "config")},
                      "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commands": commands, "machine": machine_facts(),
                      "runs": runs, "summary": summary(runs)}
            args.out.write_text(json.dumps(stored, indent=2) + "\n")

    result = summary(runs)
    print(f"{len(result['seeds'])} seeds: FastDropout mean accuracy {result['mean_fast']:.4f}, torch.nn.Dropout {result['mean_torch']:.4f}; "
          f"difference {result['mean_difference_points']:+.2f} points (standard error {result['standard_error_points']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_with_errors(main, "dropout_ablation"))
