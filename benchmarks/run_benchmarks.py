"""Regenerate benchmarks/RESULTS.md from the real Home Depot data.

Two parts, each saved in RESULTS.json and rendered into RESULTS.md together:

- quality: split the file by product_uid into increments, as if new products arrived over time,
  train one adapter per increment (LoRA and AdaLoRA alternating), merge them and evaluate every
  version and merge on every increment's validation part next to the majority class;
- speed: the suite of `adapters bench` (a whole increment trained by the baseline loop and by our
  path, settings, scaling, inference, scoring, memory, merging) on the first third of the file.

    .venv/bin/python benchmarks/run_benchmarks.py --only speed              # the full speed suite, 45 to 80 minutes
    .venv/bin/python benchmarks/run_benchmarks.py --only quality --epochs 4 --merge 1,3
    .venv/bin/python benchmarks/run_benchmarks.py --quick                   # both parts, small, a few minutes

With --reuse, the versions already trained in the work folder's registry are kept (only when their
increments match this run's settings); the page then states that. --render only rewrites the page
from RESULTS.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from adapters.bench_report import format_suite, write_plots
from adapters.bench_suite import SIZES, add_seed_runs, registry_memory, reuse_stand_ins, run_suite
from adapters.config import TrainConfig
from adapters.data import column_map
from adapters.deploy import merge_versions
from adapters.errors import AdaptersError
from adapters.evaluation import format_matrix, quality_matrix
from adapters.split import split_file
from adapters.workflow import load_merged_model, load_version_model, open_registry, train_increment

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "homedepot" / "train.csv"
logger = logging.getLogger("run_benchmarks")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"Home Depot train.csv (default: {DEFAULT_DATA})")
    parser.add_argument("--only", choices=("quality", "speed"), help="run one part and keep the other's stored results")
    parser.add_argument("--parts", type=int, default=3, help="increments to train (default: 3)")
    parser.add_argument("--rows-per-part", type=int, default=4000, help="rows kept from each increment (default: 4000)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per increment (default: 3)")
    parser.add_argument("--merge", action="append", default=[], metavar="IDS",
                        help="an extra merge to evaluate, as comma-separated version ids with equal weights; repeatable")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work", help="scratch folder (default: benchmarks/work)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md", help="page to write; its results are read from and saved to the same path with a .json suffix")
    parser.add_argument("--reuse", action="store_true", help="keep versions already trained in the work folder")
    parser.add_argument("--quick", action="store_true", help="2 increments of 600 rows, 2 epochs, and the quick speed suite")
    parser.add_argument("--render", action="store_true", help="only rewrite the page from the stored JSON")
    parser.add_argument("--redo-memory", action="store_true",
                        help="measure only the registry-growth memory section again and replace it in the stored speed results")
    parser.add_argument("--add-seeds", type=seed_list, metavar="SEEDS",
                        help="train the increment runs the stored speed results (the JSON beside --results) lack at these "
                             "seeds (a range such as 46-53 or a list such as 43,44), on the same --data, and judge accuracy over all stored seeds; each new seed "
                             "trains 4 of our runs, about 4 minutes on 2 AMX cores, and 2 baseline stand-ins, about 6 more, unless --stand-ins-from is given")
    parser.add_argument("--stand-ins-from", type=Path, metavar="JSON",
                        help="with --add-seeds: copy the baseline stand-ins at those seeds from an earlier results JSON measured on "
                             "the same data, rows and settings, instead of training them again (the page names the source)")
    args = parser.parse_args()
    if args.stand_ins_from and not args.add_seeds:
        parser.error("--stand-ins-from needs --add-seeds")
    if args.quick:
        args.parts, args.rows_per_part, args.epochs = 2, 600, 2
    return args


def train_versions(args, columns) -> tuple[list[Path], list[int], bool]:
    """Split and train, or reuse the versions of an earlier run with the same increments."""
    registry_root = args.work / "registry"
    increments = [args.work / "increments" / f"part-{index}.csv" for index in range(1, args.parts + 1)]
    if args.reuse and registry_root.is_dir() and all(path.is_file() for path in increments):
        versions = [v.id for v in open_registry(registry_root).versions() if v.manifest.get("data")]
        if len(versions) == args.parts:
            return increments, versions, True
    shutil.rmtree(args.work / "registry", ignore_errors=True)
    shutil.rmtree(args.work / "increments", ignore_errors=True)
    increments = split_file(args.data, args.work / "increments", by="product_uid", parts=args.parts,
                            encoding=columns.encoding, max_rows=args.rows_per_part)
    versions = []
    for index, path in enumerate(increments):
        config = TrainConfig(epochs=args.epochs, method="adalora" if index % 2 else "lora")
        versions.append(train_increment(registry_root, path, columns, config).id)
    return increments, versions, False


def quality_part(args, columns, command: str) -> dict:
    started = time.perf_counter()
    increments, versions, reused = train_versions(args, columns)
    registry_root = args.work / "registry"
    registry = open_registry(registry_root)
    merges = {"merged (all, equal weights)": [str(v) for v in versions]}
    merges |= {f"merged ({', '.join(ids.split(','))})": ids.split(",") for ids in args.merge}
    targets = {f"version {v} ({registry.get(v).manifest['method']})": load_version_model(registry, str(v)) for v in versions}
    for index, (name, refs) in enumerate(merges.items()):
        out_dir = args.work / f"merged-{index}"
        merge_versions(registry_root, refs, out_dir, force=True)
        targets[name] = load_merged_model(out_dir)
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command, "reused_versions": reused,
            "parts": args.parts, "rows_per_part": args.rows_per_part, "epochs": args.epochs, "versions": versions, "merges": merges,
            "matrix": quality_matrix(targets, increments, columns), "elapsed_s": time.perf_counter() - started}


def seed_list(value: str) -> list[int]:
    """Parse "46-53" or "43,44,47" into a list of distinct non-negative seeds."""
    try:
        if "-" in value.strip("-"):
            low, high = (int(part) for part in value.split("-", 1))
            seeds = list(range(low, high + 1))
        else:
            seeds = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"invalid seeds {value!r}: use a range such as 46-53 or distinct non-negative integers "
                                         "separated by commas, such as 43,44")
    return seeds


def stored_speed(path: Path) -> dict | None:
    """Return the speed results stored in the JSON file at `path`, or None when it is missing, unreadable or has none."""
    try:
        return json.loads(path.read_text()).get("speed")
    except (OSError, ValueError, AttributeError):
        return None


def speed_data(args, columns) -> Path:
    """Return the first third of the file by product_uid, so the size scaling has 8,000 training rows to draw from."""
    return split_file(args.data, args.work / "speed", by="product_uid", parts=3, encoding=columns.encoding, force=True)[0]


def speed_part(args, columns, command: str, save) -> dict:
    return run_suite(speed_data(args, columns), columns, SIZES["quick" if args.quick else "full"], command=command, checkpoint=save)


def main() -> int:
    args = parse_arguments()
    json_path = args.results.with_suffix(".json")
    stored = json.loads(json_path.read_text()) if json_path.is_file() else {}
    if not args.render:
        if not args.data.is_file():
            print(f"run_benchmarks: error: data file {args.data} not found; pass --data PATH", file=sys.stderr)
            return 2
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run_benchmarks.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        columns = column_map("homedepot")

        def save(part: str, value: dict) -> None:
            stored[part] = value
            json_path.write_text(json.dumps(stored, indent=2, default=str) + "\n")

        if (args.redo_memory or args.add_seeds) and "speed" not in stored:
            print("run_benchmarks: error: no stored speed results to update; run --only speed first", file=sys.stderr)
            return 2
        if args.add_seeds:
            main_seed = stored["speed"]["config"]["seed"]
            if main_seed in args.add_seeds:
                print(f"run_benchmarks: error: seed {main_seed} is the main run's seed; pass other seeds", file=sys.stderr)
                return 2
            if args.stand_ins_from:
                earlier = stored_speed(args.stand_ins_from)
                if earlier is None:
                    problem = "not found" if not args.stand_ins_from.is_file() else "contains no speed results"
                    print(f"run_benchmarks: error: {args.stand_ins_from} {problem}; pass a results JSON of an earlier speed run",
                          file=sys.stderr)
                    return 2
                copied = reuse_stand_ins(stored["speed"], earlier, args.add_seeds, str(args.stand_ins_from))
                print(f"copied {len(copied)} stand-in runs from {args.stand_ins_from}")
                save("speed", stored["speed"])
            add_seed_runs(stored["speed"], speed_data(args, columns), columns, args.add_seeds, command=command,
                          checkpoint=lambda results: save("speed", results))
        elif args.redo_memory:
            stored["speed"]["registry_memory"] = registry_memory(speed_data(args, columns), columns, SIZES["quick" if args.quick else "full"])
            stored["speed"]["registry_memory_remeasured"] = {
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command}
            save("speed", stored["speed"])
        else:
            if args.only in (None, "quality"):
                save("quality", quality_part(args, columns, command))
            if args.only in (None, "speed"):
                save("speed", speed_part(args, columns, command, lambda results: save("speed", results)))
    if "speed" in stored:
        write_plots(stored["speed"], args.results.parent / "plots")
    ablation_paths = [args.results.parent / f"{factor}-ablation.json" for factor in ABLATIONS]
    ablations = [json.loads(path.read_text()) for path in ablation_paths if path.is_file()]
    args.results.write_text(results_page(stored, ablations))
    print(f"wrote {args.results}")
    return 0


def results_page(stored: dict, ablations: list[dict] = ()) -> str:
    lines = ["# Measured results", "", "Regenerated from RESULTS.json by `benchmarks/run_benchmarks.py`; each part states the command "
             "and date of the run that measured it.", ""]
    if "speed" in stored:
        lines += ["## Speed", "", format_suite(stored["speed"]), "![training throughput](plots/training-throughput.png)",
                  "![time against increment size](plots/increment-size.png)", "![merge time](plots/merge-time.png)", ""]
    for ablation in ablations:
        if ablation["summary"]["seeds"]:
            lines += ablation_lines(ablation)
    if "quality" in stored:
        lines += quality_lines(stored["quality"])
    return "\n".join(lines)


# Per factor of benchmarks/ablation.py: the section title and what the two runs of a seed differ in.
ABLATIONS = {
    "dropout": ("FastDropout against torch's dropout: accuracy", "the dropout modules; the speed suite times a step with each dropout"),
    "window": ("Length-grouping window of 8 batches against 50: accuracy",
               "how many batches are sorted by length together; the speed suite times the default"),
}


def ablation_lines(ablation: dict) -> list[str]:
    """Render one factor of benchmarks/ablation.py: accuracy per seed in each arm, and the mean difference."""
    summary, machine, config = ablation["summary"], ablation["machine"], ablation["config"]
    factor = ablation.get("factor", "dropout")
    title, difference = ABLATIONS[factor]
    first, second = summary["arms"]
    precisions = sorted({run.get("precision", "fp32") for run in ablation["runs"].values()})
    grouping = "length-grouped batches" if factor == "window" else f"length-grouped batches (windows of {config['group_window']} batches)"
    lines = [
        f"## {title}", "",
        f"Measured up to {ablation['date']} with {' then '.join(f'`{command}`' for command in ablation['commands'])}"
        + (" (that script is now `benchmarks/ablation.py --factor dropout`)" if any("dropout_ablation.py" in c for c in ablation["commands"]) else "")
        + f" on {machine['cpu_model']} ({machine['usable_cpus']} CPUs, "
        f"torch {machine['torch']}). Our LoRA path with {grouping}, on the speed suite's {ablation['rows']} training rows "
        f"and {ablation['validation_rows']} validation rows, {config['epochs']} epochs, in {' and '.join(precisions)}. "
        f"The two runs of a seed differ only in {difference}. Wall times are not compared here, because other work may share the CPUs.", "",
        f"| seed | {first} | {second} | difference (points) |", "| --- | --- | --- | --- |",
    ]
    accuracies = summary["accuracies"]
    for index, seed in enumerate(summary["seeds"]):
        lines.append(f"| {seed} | {accuracies[first][index]:.4f} | {accuracies[second][index]:.4f} | {summary['differences_points'][index]:+.1f} |")
    mean, error = summary["mean_difference_points"], summary["standard_error_points"]
    lines += ["", f"Mean over {len(summary['seeds'])} seeds: {summary['means'][first]:.4f} with {first}, {summary['means'][second]:.4f} with "
              f"{second}, a difference of {mean:+.2f} points (standard error {error:.2f}; two standard errors either side span "
              f"{mean - 2 * error:+.2f} to {mean + 2 * error:+.2f} points)."]
    if len(summary["seeds"]) < 2:
        lines.append("One seed gives no standard error, so there is no verdict yet.")
    elif abs(mean) <= 2 * error:
        lines.append(f"That is within two standard errors of zero: no difference in accuracy between {first} and {second} is measurable "
                     "at this number of seeds, though one up to the ends of that span is not ruled out.")
    else:
        lines.append(f"That is more than two standard errors from zero: {first} {'costs' if mean < 0 else 'gains'} accuracy against "
                     f"{second} here.")
    return lines + [""]


def quality_lines(quality: dict) -> list[str]:
    matrix = quality["matrix"]
    trained = "reused from an earlier run of the same command in the same work folder" if quality["reused_versions"] else "trained in this run"
    lines = [
        "## Quality on real data", "",
        f"Measured {quality['date']} in {quality['elapsed_s'] / 60:.1f} minutes with `{quality['command']}`; the versions were {trained}.", "",
        f"Data: the Home Depot search relevance file, sorted by `product_uid` and cut into {quality['parts']} increments, keeping "
        f"the first {quality['rows_per_part']} rows of each. Versions {', '.join(map(str, quality['versions']))} were trained on "
        f"increments 1 to {quality['parts']} ({quality['epochs']} epochs each, LoRA and AdaLoRA alternating, every other option at its "
        "default). Each cell is measured on that increment's validation part, whose queries never appear in training.", "",
    ]
    for metric in ("accuracy", "macro_f1", "ndcg@10"):
        lines += [f"### Validation {metric}", "", format_matrix(matrix, metric), ""]
    lines += ["### Every model against the majority class", ""]
    for name in matrix:
        margins = [matrix[name][p]["accuracy"] - matrix[name][p]["majority_baseline_accuracy"] for p in matrix[name]]
        verdict = "beats" if all(m > 0 for m in margins) else "does not beat"
        described = ", ".join(f"{m * 100:+.1f}" for m in margins)
        lines.append(f"- `{name}` {verdict} the majority class on every increment (accuracy margins in points: {described}).")
    extra = [name for name in quality["merges"] if name != "merged (all, equal weights)"]
    if extra:
        lines += ["", f"The extra merges ({', '.join(f'`{name}`' for name in extra)}, equal weights) were named on the command line by "
                  "the person running it, after the individual versions' results, and are scored on the same validation parts, so "
                  "their margins are optimistic. There is no separate test part yet."]
    if "machine" not in quality:
        lines += ["", "The run behind this section recorded neither the CPU model nor all software versions. It ran at an earlier "
                  "commit on a 2-CPU x86_64 Linux machine with torch 2.13.0+cpu, not necessarily the CPU of the speed section."]
    return lines + [""]


def run_with_errors(main, prog: str) -> int:
    """Call `main` and turn an AdaptersError into one line on stderr and exit code 2."""
    try:
        return main()
    except AdaptersError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(run_with_errors(main, "run_benchmarks"))
