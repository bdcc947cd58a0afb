"""`adapters train`: train one adapter on one increment and publish it as a new version."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from adapters.cli.common import (
    add_base_option,
    add_column_options,
    add_registry_option,
    columns_from,
)
from adapters.config import TrainConfig

HELP = "train an adapter on one increment and publish it"
DESCRIPTION = (
    "Train a LoRA or AdaLoRA adapter on the frozen base with one data increment, keep the best epoch "
    "and publish it to the registry. Runs unchanged under `accelerate launch`. The last line of output "
    "is the new version id."
)


def add_arguments(parser) -> None:
    add_registry_option(parser)
    parser.add_argument("--data", required=True, help="increment file (CSV, JSON Lines or Parquet)")
    add_column_options(parser)
    add_base_option(parser)
    parser.add_argument("--from", dest="parent", metavar="VERSION", help="warm-start from this LoRA version or alias")
    parser.add_argument("--force", action="store_true", help="train even if a version was already trained on this increment")
    add_config_options(parser.add_argument_group("training"))


def add_config_options(group) -> None:
    """Add one option per TrainConfig field, with the field's help text and default."""
    defaults = TrainConfig()
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        help_text = field.metadata["help"]
        if hints[field.name] is bool:
            group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None, help=f"{help_text} (default: {default})")
            continue
        if field.name in ("target_modules", "modules_to_save"):
            group.add_argument(flag, dest=field.name, type=_names, default=None, help=f"{help_text} (default: {','.join(default)})")
            continue
        kind = _scalar_type(hints[field.name])
        if "default" not in help_text:
            help_text = f"{help_text} (default: {default})"
        group.add_argument(flag, dest=field.name, type=kind, default=None, choices=field.metadata.get("choices"), help=help_text)


def config_from(args) -> TrainConfig:
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{name: value for name, value in values.items() if value is not None})


def _scalar_type(hint):
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def run(args) -> int:
    from adapters.workflow import train_increment

    version = train_increment(
        args.registry, args.data, columns_from(args), config_from(args),
        base=args.base, parent=args.parent, force=args.force,
    )
    if version is not None:
        validation = version.manifest["metrics"]["validation"]
        print(f"validation accuracy {validation['accuracy']:.4f}, macro F1 {validation['macro_f1']:.4f} (epoch {version.manifest['metrics']['best_epoch']})")
        print(version.id)
    return 0
