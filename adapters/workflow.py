"""The product's jobs as library functions: train an increment, load a version, merge versions.

The CLI and the benchmarks call these; they tie data, base model, training, merging and the
registry together and hold no arithmetic of their own.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import peft
import torch
import transformers
from accelerate import Accelerator

from adapters import __version__
from adapters.base import (
    BaseSpec,
    check_fingerprint,
    fingerprint_model,
    load_classifier,
    load_tokenizer,
    resolve_base,
)
from adapters.config import TrainConfig
from adapters.data import ColumnMap, Increment, load_increment
from adapters.distributed import make_accelerator
from adapters.errors import AdaptersError
from adapters.modeling import load_adapter, wrap_for_training
from adapters.store import existing_registry, open_registry
from adapters.training import TrainResult, train_adapter
from registry import Registry, Version

logger = logging.getLogger(__name__)


def train_increment(
    registry_root: str | Path,
    data_path: str | Path,
    columns: ColumnMap,
    config: TrainConfig,
    *,
    base: str | None = None,
    parent: str | None = None,
    force: bool = False,
    accelerator: Accelerator | None = None,
) -> Version | None:
    """Train one adapter on one increment and publish it as a new registry version.

    Every process trains; only the main process writes to the registry. Returns the new Version on
    the main process and None on the others.

    Raises:
        AdaptersError: invalid options, unreadable data, an increment the registry already contains
            (without `force`), or a parent version trained on another base.
    """
    config.validate()
    accelerator = accelerator or make_accelerator(config.grad_accum)
    registry = existing_registry(registry_root)
    increment = load_increment(data_path, columns, known_labels=registry.labels if registry else None,
                               validation_fraction=config.validation_fraction)
    if registry and not force:
        _refuse_known_increment(registry, increment)

    spec = resolve_base(base)
    tokenizer = load_tokenizer(spec)
    model = load_classifier(spec, increment.labels, seed=config.seed)
    base_fingerprint = fingerprint_model(model)
    build_model, parent_version = _model_builder(registry, parent, model, config, spec, base_fingerprint)

    result = train_adapter(build_model, tokenizer, increment.train, increment.validation, increment.labels, config, accelerator=accelerator)
    version = None
    if accelerator.is_main_process:
        # The registry is created only now, so a run that fails earlier leaves no empty registry behind.
        registry = registry or open_registry(registry_root, create=True)
        version = publish_result(registry, spec, base_fingerprint, increment, config, result, parent_version, accelerator.num_processes)
    accelerator.wait_for_everyone()
    return version


def publish_result(registry, spec, base_fingerprint, increment, config, result, parent=None, num_processes=1) -> Version:
    """Fix the registry's label set if it has none, and publish a trained adapter with its manifest."""
    manifest = _adapter_manifest(spec, base_fingerprint, increment, config, result, parent, num_processes)
    registry.ensure_labels(increment.labels)
    return _publish_model(registry, result.model, spec, manifest)


def _refuse_known_increment(registry: Registry, increment: Increment) -> None:
    for version in registry.versions():
        data = version.manifest.get("data") or {}
        if data.get("fingerprint") == increment.fingerprint:
            raise AdaptersError(
                f"version {version.id} was already trained on this increment (data fingerprint {increment.fingerprint[:19]}); "
                "pass --force to train it again"
            )


def _model_builder(registry, parent, model, config: TrainConfig, spec: BaseSpec, base_fingerprint: str):
    if parent is None:
        return (lambda total_steps: wrap_for_training(model, config, total_steps)), None
    if registry is None:
        raise AdaptersError(f"--from {parent}: the registry is empty, so there is no version to warm-start from")
    parent_version = registry.open_version(parent)
    check_fingerprint(parent_version.manifest["base"]["fingerprint"], base_fingerprint, what=f"version {parent_version.id}", base=spec)
    parent_method = parent_version.manifest.get("method")
    if parent_method != "lora":
        # NOTE: peft prunes an AdaLoRA adapter to its final rank pattern when saving it, and its rank
        # allocator cannot resume from pruned modules, so only LoRA versions can be warm-started.
        raise AdaptersError(f"--from {parent}: version {parent_version.id} is {parent_method}; warm-starting is supported from LoRA versions only")
    if config.method != "lora":
        raise AdaptersError(f"--from {parent} continues a LoRA adapter, so --method must be lora, not {config.method!r}")
    return (lambda total_steps: load_adapter(model, parent_version.path, trainable=True)), parent_version


def _adapter_manifest(spec, base_fingerprint, increment: Increment, config, result: TrainResult, parent, num_processes: int) -> dict:
    peft_config = result.model.peft_config["default"]
    manifest = {
        "kind": "adapter",
        "method": config.method,
        "parent": parent.id if parent else None,
        "hyperparameters": config.to_dict(),
        "base": {"id": spec.model_id, "fingerprint": base_fingerprint},
        "labels": list(increment.labels),
        "data": {"path": str(increment.path), "fingerprint": increment.fingerprint, "rows": dict(increment.counts)},
        "metrics": {"validation": _plain_metrics(result.metrics), "best_epoch": result.best_epoch,
                    "history": [_plain_metrics(epoch) for epoch in result.history]},
        "training": {
            "optimizer_steps": result.optimizer_steps,
            "num_processes": num_processes,
            "precision": result.precision,
            "elapsed_s": round(result.elapsed_s, 3),
            "samples_per_s": round(result.samples_per_s, 2),
            "tokens_per_s": round(result.tokens_per_s, 1),
            "software": software_versions(),
        },
    }
    if config.method == "adalora":
        manifest["adalora"] = {
            "total_step": peft_config.total_step, "tinit": peft_config.tinit, "tfinal": peft_config.tfinal,
            "deltaT": peft_config.deltaT, "update_and_allocate_calls": result.allocation_calls,
            "rank_pattern": rank_counts(peft_config.rank_pattern),
        }
    return manifest


def rank_counts(rank_pattern: dict | None) -> dict[str, int]:
    """Summarise peft's AdaLoRA rank pattern (a mask per module) as the kept rank per module."""
    if not rank_pattern:
        return {}
    counts = {}
    for name, mask in rank_pattern.items():
        values = mask.view(-1).tolist() if isinstance(mask, torch.Tensor) else list(mask)
        counts[name.removesuffix(".default").removesuffix(".lora_E")] = int(sum(bool(v) for v in values))
    return counts


def _plain_metrics(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key != "confusion"} | {"confusion": metrics.get("confusion")}


def _publish_model(registry: Registry, model, spec: BaseSpec, manifest: dict) -> Version:
    model.peft_config["default"].base_model_name_or_path = spec.model_id
    with tempfile.TemporaryDirectory(prefix="adapters-save-") as folder:
        model.save_pretrained(folder)
        started = time.perf_counter()
        version = registry.publish(folder, manifest)
    logger.info("Published version %d to %s in %.2f s", version.id, registry.root, time.perf_counter() - started)
    return version


def software_versions() -> dict[str, str]:
    """Versions of the libraries and the machine that affect numbers, for manifests and benchmarks."""
    return {
        "adapters": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "cpu_count": str(os.cpu_count()), "torch_threads": str(torch.get_num_threads()),
    }


@dataclass
class LoadedTarget:
    """A model ready for inference plus what is known about where it came from."""

    model: torch.nn.Module
    tokenizer: object
    labels: list[str]
    description: str


def load_version_model(registry: Registry, ref: str, base: str | None = None) -> LoadedTarget:
    """Verify a version's checksums and load it onto the base, refusing another base fingerprint."""
    version = registry.open_version(ref)
    manifest = version.manifest
    if manifest.get("kind") != "adapter":
        raise AdaptersError(f"version {version.id} is a {manifest.get('kind')!r}, not an adapter; pass an adapter version")
    spec = resolve_base(base)
    model = load_classifier(spec, manifest["labels"])
    check_fingerprint(manifest["base"]["fingerprint"], fingerprint_model(model), what=f"version {version.id}", base=spec)
    peft_model = load_adapter(model, version.path)
    return LoadedTarget(peft_model, load_tokenizer(spec), list(manifest["labels"]), f"version {version.id}")


def load_merged_model(folder: str | Path) -> LoadedTarget:
    """Load a merged deployable folder with plain transformers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise AdaptersError(f"{str(folder)!r} is not a merged model folder (no config.json); pass a version, an alias or a folder written by `adapters merge`")
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
    return LoadedTarget(model, AutoTokenizer.from_pretrained(str(folder)), labels, str(folder))


def load_target(registry_root: str | None, target: str, base: str | None = None) -> LoadedTarget:
    """Load a version id, an alias or a merged folder for inference."""
    if Path(target).is_dir():
        return load_merged_model(target)
    return load_version_model(open_registry(registry_root), target, base)
