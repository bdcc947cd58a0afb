"""Merge registry versions into one deployable transformers folder and record the merge."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from adapters.base import (
    check_fingerprint,
    fingerprint_model,
    load_classifier,
    load_tokenizer,
    resolve_base,
)
from adapters.errors import AdaptersError
from adapters.merging import combine_weights, merge_state_dict, read_adapter
from adapters.workflow import open_registry

logger = logging.getLogger(__name__)


@dataclass
class MergeResult:
    """Where the merged model went, which versions and weights made it, and how long it took."""

    out_dir: Path
    versions: list[int]
    weights: list[float]
    merge_id: int | None
    elapsed_s: float
    timings: dict = field(default_factory=dict)


def check_merge_inputs(versions: list, refs: list[str]) -> None:
    """Raise one AdaptersError listing every problem: duplicates, mixed bases, mixed label maps, non-adapters."""
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
    fingerprints = {v.manifest["base"]["fingerprint"] for v in adapters}
    if len(fingerprints) > 1:
        described = ", ".join(f"version {v.id}: {v.manifest['base']['fingerprint'][:19]}" for v in adapters)
        problems.append(f"versions were trained on different bases ({described})")
    label_maps = {tuple(v.manifest["labels"]) for v in adapters}
    if len(label_maps) > 1:
        described = "; ".join(f"version {v.id}: {v.manifest['labels']}" for v in adapters)
        problems.append(f"versions have different label maps ({described})")
    if problems:
        raise AdaptersError("cannot merge: " + "; ".join(problems))


def merge_versions(
    registry_root: str | Path,
    refs: list[str],
    out_dir: str | Path,
    *,
    weights: list[float] | None = None,
    alpha: float | None = None,
    base: str | None = None,
    force: bool = False,
) -> MergeResult:
    """Merge registry versions into a plain transformers model folder at `out_dir`.

    Every input is checked before anything is written. The folder is built in a temporary sibling
    and renamed into place, so a failure never leaves a partial model. The merge is recorded in the
    registry with the versions, weights, fingerprints and the checksum of the written weights.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AdaptersError(f"output path {str(out_dir)!r} is a file; pass a folder for --out")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise AdaptersError(f"output folder {str(out_dir)!r} is not empty; pass --force to replace it or choose another --out")
    registry = open_registry(registry_root)
    if not refs:
        raise AdaptersError("no versions to merge; name at least one version")
    versions = [registry.open_version(ref) for ref in refs]
    check_merge_inputs(versions, refs)
    weights = combine_weights(len(versions), weights, alpha)

    spec = resolve_base(base)
    labels = list(versions[0].manifest["labels"])
    model = load_classifier(spec, labels)
    base_fingerprint = fingerprint_model(model)
    for version in versions:
        check_fingerprint(version.manifest["base"]["fingerprint"], base_fingerprint, what=f"version {version.id}", base=spec)
    loaded_s = time.perf_counter() - started

    adapters = [read_adapter(version.path, f"version {version.id}") for version in versions]
    merged = merge_state_dict(model.state_dict(), adapters, weights)
    model.load_state_dict(merged)
    merge_s = time.perf_counter() - started - loaded_s

    card = _model_card(versions, weights, spec.model_id, base_fingerprint, alpha)
    weights_sha256 = _write_folder(model, load_tokenizer(spec), card, out_dir)
    record = registry.record_merge({
        "versions": [v.id for v in versions], "weights": weights, "alpha": alpha, "method": "linear",
        "out_dir": str(out_dir.resolve()), "base": {"id": spec.model_id, "fingerprint": base_fingerprint},
        "model_sha256": weights_sha256,
    })
    elapsed_s = time.perf_counter() - started
    logger.info("Merged versions %s with weights %s into %s in %.2f s", [v.id for v in versions], weights, out_dir, elapsed_s)
    return MergeResult(out_dir, [v.id for v in versions], weights, record.get("merge_id"), elapsed_s,
                       {"load_s": loaded_s, "merge_s": merge_s})


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
        digest = hashlib.sha256((staging / "model.safetensors").read_bytes()).hexdigest()
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return digest


def _model_card(versions, weights: list[float], base_id: str, base_fingerprint: str, alpha: float | None) -> str:
    rows = "\n".join(
        f"| {v.id} | {v.manifest['method']} | {w:.6g} | {v.manifest['data']['fingerprint'][:19]} | "
        f"{v.manifest['metrics']['validation']['accuracy']:.4f} |"
        for v, w in zip(versions, weights)
    )
    how = f"recursive fusion with alpha = {alpha}" if alpha is not None else "weighted sum of exact weight updates"
    return (
        "# Merged ranking model\n\n"
        f"A BERT sequence classifier: base `{base_id}` (fingerprint `{base_fingerprint}`) plus the "
        f"{how} of the adapter versions below. Load it with "
        "`AutoModelForSequenceClassification.from_pretrained`; peft is not needed.\n\n"
        "| version | method | weight | data fingerprint | validation accuracy |\n"
        "| --- | --- | --- | --- | --- |\n"
        f"{rows}\n"
    )
