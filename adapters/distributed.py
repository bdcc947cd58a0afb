"""One place that decides how accelerate runs here: on the accelerator if any, else on CPU with gloo."""

from __future__ import annotations

import torch
from accelerate import Accelerator, PartialState


def cpu_only() -> bool:
    """Return True when torch finds no accelerator device, so processes must train on CPU."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return not accelerator.is_available()
    return not torch.cuda.is_available()


def process_state() -> PartialState:
    """Return the shared accelerate process state.

    On a machine without an accelerator it is built with cpu=True, which makes accelerate join the
    processes that `accelerate launch --multi_gpu` or `torchrun` started into one gloo group instead
    of treating each as a separate run.
    """
    return PartialState(cpu=cpu_only())


def make_accelerator(gradient_accumulation_steps: int = 1) -> Accelerator:
    """Build the Accelerator that training uses, consistent with `process_state()`."""
    return Accelerator(cpu=cpu_only(), gradient_accumulation_steps=gradient_accumulation_steps)
