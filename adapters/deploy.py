"""Merge registry versions into a deployable transformers folder or a new adapter version.

Every input is checked before any work, and all problems are reported in one error. The dense
folder is built in a temporary sibling and renamed into place; a merged adapter is published
through the registry's atomic publish. Every merge is recorded in the registry.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from adapters.base import check_fingerprint, fingerprint_model, load_classifier, load_tokenizer, resolve_base
from adapters.errors import AdaptersError
from adapters.merge_export import exact_factors, svd_factors, write_adapter
from adapters.merge_methods import MergeOptions
from adapters.merging import combine_weights, delta_weights, merge_state_dict, merged_heads, merged_updates, read_adapter, weight_problems
from adapters.workflow import open_registry, software_versions
from registry import RegistryError

logger = logging.getLogger(__name__)

OUTPUT_FORMS = ("dense", "exact", "svd")


@dataclass
class MergeResult:
    """The outcome of a merge: a folder or a version, the weights used, timings and per-module figures."""

    versions: list[int]
    weights: list[float]
    form: str
    out_dir: Path | None = None
    version: int | None = None
    merge_id: int | None = None
    elapsed_s: float = 0.0
    timings: dict = field(default_factory=dict)
    modules: dict = field(default_factory=dict)


def plan_problems(versions: list, refs: list[str]) -> list[str]:
    """List duplicates, non-adapter versions, mixed bases and mixed label maps."""
    problems = []
    seen = {}
    for ref, version in zip(refs, versions):
        if version.id in seen:
            problems.append(f"version {version.id} is listed twice ({seen[version.id]!r} and {ref!r}); list each version once")
        seen.setdefault(version.id, ref)
    adapters = [v for v in versions if v.manifest.get("kind") == "adapter"]
    for version in versions:
        if version.manifest.get("kind") != "adapter":
            problems.append(f"version {version.id} is a {version.manifest.get('kind')!r}, not an adapter")
    if len({v.manifest["base"]["fingerprint"] for v in adapters}) > 1:
        described = ", ".join(f"version {v.id}: {v.manifest['base']['fingerprint'][:19]}" for v in adapters)
        problems.append(f"versions were trained on different bases ({described})")
    if len({tuple(v.manifest["labels"]) for v in adapters}) > 1:
        described = "; ".join(f"version {v.id}: {v.manifest['labels']}" for v in adapters)
        problems.append(f"versions have different label maps ({described})")
    return problems


def _form_problems(form: str, options: MergeOptions, rank: int | None, energy: float | None, out_dir, force: bool, dry_run: bool) -> list[str]:
    problems = options.problems()
    if form not in OUTPUT_FORMS:
        problems.append(f"output form {form!r} is not one of {', '.join(OUTPUT_FORMS)}")
    if form == "svd" and (rank is None) == (energy is None):
        problems.append("--as-adapter svd needs exactly one of --rank R or --energy E")
    if form != "svd" and (rank is not None or energy is not None):
        problems.append("--rank and --energy apply only to --as-adapter svd")
    if rank is not None and rank < 1:
        problems.append(f"--rank {rank} must be at least 1")
    if energy is not None and not 0.0 < energy <= 1.0:
        problems.append(f"--energy {energy} must be in (0, 1]")
    if form == "exact" and options.method not in ("linear", "task-arithmetic"):
        problems.append(f"--as-adapter exact needs --method linear or task-arithmetic, not {options.method!r}; use --as-adapter svd")
    if form == "dense" and not dry_run:
        out = Path(out_dir) if out_dir else None
        if out is None:
            problems.append("--out is missing; name the folder for the merged model, or pass --as-adapter or --dry-run")
        elif out.exists() and not out.is_dir():
            problems.append(f"output path {str(out)!r} is a file; pass a folder for --out")
        elif out.exists() and any(out.iterdir()) and not force:
            problems.append(f"output folder {str(out)!r} is not empty; pass --force to replace it or choose another --out")
    return problems


def merge_versions(
    registry_root: str | Path,
    refs: list[str],
    out_dir: str | Path | None = None,
    *,
    weights: list[float] | None = None,
    alpha: float | None = None,
    options: MergeOptions | None = None,
    form: str = "dense",
    rank: int | None = None,
    energy: float | None = None,
    dry_run: bool = False,
    base: str | None = None,
    force: bool = False,
) -> MergeResult:
    """Merge registry versions into a dense model folder (`form="dense"`) or a new adapter version.

    `weights` default to 1/N for `linear` and to 1 for the other methods; `alpha` replaces them by
    the recursive fusion weights. With `dry_run`, the per-module norms (and SVD errors) are computed
    and returned, and nothing is written.

    Raises:
        AdaptersError: one error listing every problem with the versions, weights and options.
    """
    started = time.perf_counter()
    options = options or MergeOptions()
    registry = open_registry(registry_root)
    found, problems = [], []
    for ref in refs:
        try:
            found.append((ref, registry.open_version(ref)))
        except RegistryError as error:
            problems.append(str(error))
    versions = [version for _, version in found]
    problems += weight_problems(len(refs), weights, alpha)
    problems += plan_problems(versions, [ref for ref, _ in found])
    problems += _form_problems(form, options, rank, energy, out_dir, force, dry_run)
    if problems:
        raise AdaptersError("cannot merge: " + "; ".join(dict.fromkeys(problems)))
    weights = combine_weights(len(versions), weights, alpha, default=None if options.method == "linear" else 1.0)

    spec = resolve_base(base)
    labels = list(versions[0].manifest["labels"])
    model = load_classifier(spec, labels)
    base_fingerprint = fingerprint_model(model)
    for version in versions:
        check_fingerprint(version.manifest["base"]["fingerprint"], base_fingerprint, what=f"version {version.id}", base=spec)
    adapters = [read_adapter(version.path, f"version {version.id}") for version in versions]
    timings = {"load_s": time.perf_counter() - started}

    result = MergeResult([v.id for v in versions], weights, form)
    arithmetic_started = time.perf_counter()
    updates = merged_updates(adapters, weights, options)
    svd = svd_factors(updates, rank=rank, energy=energy) if form == "svd" else None
    result.modules = _module_report(adapters, updates, svd[1] if svd else None)
    timings["merge_s"] = time.perf_counter() - arithmetic_started
    if dry_run:
        result.elapsed_s, result.timings = time.perf_counter() - started, timings
        return result

    record = {"versions": result.versions, "weights": weights, "alpha": alpha, "options": asdict(options), "form": form,
              "base": {"id": spec.model_id, "fingerprint": base_fingerprint}}
    if form == "dense":
        merged = merge_state_dict(model.state_dict(), adapters, weights, options)
        model.load_state_dict(merged)
        card = _model_card(versions, weights, spec.model_id, base_fingerprint, alpha, options)
        result.out_dir = Path(out_dir)
        record |= {"out_dir": str(result.out_dir.resolve()), "model_sha256": _write_folder(model, load_tokenizer(spec), card, result.out_dir)}
    else:
        factors = exact_factors(adapters, weights, options) if form == "exact" else svd[0]
        version = _publish_adapter(registry, model, factors, adapters, weights, versions, spec, base_fingerprint, record, result.modules, rank, energy)
        result.version = version.id
        record["version"] = version.id
    result.merge_id = registry.record_merge(record).get("merge_id")
    result.elapsed_s, result.timings = time.perf_counter() - started, timings
    logger.info("Merged versions %s (%s, %s) in %.2f s", result.versions, options.method, form, result.elapsed_s)
    return result


def _module_report(adapters, updates: dict[str, torch.Tensor], svd_errors: dict[str, float] | None) -> dict:
    per_adapter = [delta_weights(adapter) for adapter in adapters]
    report = {}
    for module, update in updates.items():
        report[module] = {
            "delta_norms": [torch.linalg.matrix_norm(d[module]).item() if module in d else 0.0 for d in per_adapter],
            "merged_norm": torch.linalg.matrix_norm(update).item(),
        }
        if svd_errors is not None:
            report[module]["svd_relative_error"] = svd_errors.get(module, 0.0)
    return report


def _publish_adapter(registry, model, factors, adapters, weights, versions, spec, base_fingerprint, record, modules, rank, energy):
    modules_to_save = sorted({name for adapter in adapters for name in (adapter.config.get("modules_to_save") or []) if name != "score"})
    with tempfile.TemporaryDirectory(prefix="adapters-merge-") as folder:
        write_adapter(copy.deepcopy(model), factors, merged_heads(adapters, weights), modules_to_save, Path(folder), spec.model_id)
        manifest = {
            "kind": "adapter",
            "method": "lora",
            "parent": None,
            "parents": [v.id for v in versions],
            "merge": {**record, "rank": rank, "energy": energy, "modules": modules},
            "hyperparameters": {"r": {m: int(d.shape[0]) for m, (d, _) in factors.items()}},
            "base": {"id": spec.model_id, "fingerprint": base_fingerprint},
            "labels": list(versions[0].manifest["labels"]),
            "data": None,
            "metrics": {},
            "training": {"software": software_versions()},
        }
        return registry.publish(folder, manifest)


def _write_folder(model, tokenizer, card: str, out_dir: Path) -> str:
    """Save model, tokenizer and card into a temporary sibling, then swap it into place."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AdaptersError(f"cannot create output folder {str(out_dir)!r}: {error.strerror}; pass another --out") from None
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "README.md").write_text(card)
        _apply_umask(staging)
        digest = hashlib.sha256((staging / "model.safetensors").read_bytes()).hexdigest()
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return digest


def _apply_umask(folder: Path) -> None:
    """Give the folder and its files the usual permissions, since mkdtemp and atomic writes make them private."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _model_card(versions, weights: list[float], base_id: str, base_fingerprint: str, alpha: float | None, options: MergeOptions) -> str:
    rows = "\n".join(
        f"| {v.id} | {v.manifest['method']} | {w:.6g} | {((v.manifest.get('data') or {}).get('fingerprint') or 'merged')[:19]} | "
        f"{_accuracy(v)} |"
        for v, w in zip(versions, weights)
    )
    how = f"recursive fusion with alpha = {alpha}" if alpha is not None else f"`{options.method}` merge of the exact weight updates"
    return (
        "# Merged ranking model\n\n"
        f"A BERT sequence classifier: base `{base_id}` (fingerprint `{base_fingerprint}`) plus the "
        f"{how} of the adapter versions below{_method_settings(options)}. Load it with "
        "`AutoModelForSequenceClassification.from_pretrained`; peft is not needed.\n\n"
        "| version | method | weight | data fingerprint | validation accuracy |\n"
        "| --- | --- | --- | --- | --- |\n"
        f"{rows}\n"
    )


def _method_settings(options: MergeOptions) -> str:
    settings = {"task-arithmetic": f"lambda {options.scale}", "ties": f"density {options.density}",
                "dare": f"drop rate {options.drop_rate}, seed {options.seed}",
                "dare-ties": f"drop rate {options.drop_rate}, seed {options.seed}"}
    return f" ({settings[options.method]})" if options.method in settings else ""


def _accuracy(version) -> str:
    accuracy = ((version.manifest.get("metrics") or {}).get("validation") or {}).get("accuracy")
    return "-" if accuracy is None else f"{accuracy:.4f}"
