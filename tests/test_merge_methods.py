"""Merge methods against hand-computed tensors: linear, task arithmetic, TIES, DARE and DARE-TIES."""

from __future__ import annotations

import pytest
import torch

from adapters.merge_methods import MergeOptions, combine, dare_generator, disjoint_mean, drop_and_rescale, ties, trim


def test_trim_keeps_largest_magnitudes():
    delta = torch.tensor([[0.1, -3.0], [2.0, -0.5]])

    trimmed = trim(delta, density=0.5)

    assert torch.equal(trimmed, torch.tensor([[0.0, -3.0], [2.0, 0.0]]))


def test_trim_rounds_kept_count_up():
    delta = torch.tensor([1.0, 2.0, 3.0])

    # ceil(0.2 * 3) = 1 entry survives.
    assert torch.equal(trim(delta, density=0.2), torch.tensor([0.0, 0.0, 3.0]))


def test_disjoint_mean_averages_agreeing_entries():
    first = torch.tensor([2.0, -1.0, 0.0, 1.0])
    second = torch.tensor([4.0, 3.0, 0.0, -1.0])

    merged = disjoint_mean([first, second])

    # Entry 0: both positive, mean 3. Entry 1: sum 2 elects +, only 3 agrees.
    # Entry 2: nothing survives, so 0. Entry 3: sum 0 elects sign 0, nothing agrees, so 0.
    assert torch.equal(merged, torch.tensor([3.0, 3.0, 0.0, 0.0]))


def test_ties_applies_weights_before_trimming():
    first = torch.tensor([1.0, -4.0, 0.5, 2.0])
    second = torch.tensor([-3.0, -1.2, 1.0, 0.2])

    merged = ties([first, second], [1.0, 0.5], density=0.5)

    # Weighted: [1, -4, 0.5, 2] and [-1.5, -0.6, 0.5, 0.1]; the top halves are [0, -4, 0, 2] and
    # [-1.5, -0.6, 0, 0]. Signs by summed mass: [-, -, 0, +]. Agreeing means: [-1.5, -2.3, 0, 2].
    assert torch.allclose(merged, torch.tensor([-1.5, -2.3, 0.0, 2.0]), atol=1e-6)


def test_task_arithmetic_scales_sum():
    deltas = [torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])]

    merged = combine(deltas, [1.0, 1.0], MergeOptions(method="task-arithmetic", scale=0.5), "m")

    assert torch.allclose(merged, torch.tensor([2.0, 0.5]), atol=1e-7)


def test_drop_and_rescale_keeps_survivors_scaled():
    delta = torch.arange(1.0, 1001.0)

    dropped = drop_and_rescale(delta, 0.25, torch.Generator().manual_seed(3))

    survivors = dropped != 0
    assert torch.allclose(dropped[survivors], delta[survivors] / 0.75, atol=1e-4)
    assert abs(survivors.float().mean().item() - 0.75) < 0.05


def test_dare_is_reproducible_and_independent_of_module_order():
    deltas = [torch.randn(8, 8, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    options = MergeOptions(method="dare", drop_rate=0.5, seed=11)

    first = combine(deltas, [0.5, 0.5], options, "bert.encoder.layer.0.attention.self.query")
    combine(deltas, [0.5, 0.5], options, "bert.encoder.layer.1.attention.self.query")
    again = combine(deltas, [0.5, 0.5], options, "bert.encoder.layer.0.attention.self.query")

    assert torch.equal(first, again)


def test_dare_equals_linear_sum_of_masked_updates():
    deltas = [torch.randn(6, 5, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    options = MergeOptions(method="dare", drop_rate=0.3, seed=2)

    merged = combine(deltas, [0.7, 0.3], options, "m")

    expected = sum(
        weight * drop_and_rescale(delta, 0.3, dare_generator(2, index, "m")) for index, (weight, delta) in enumerate(zip([0.7, 0.3], deltas))
    )
    assert torch.allclose(merged, expected, atol=1e-6)


def test_dare_ties_elects_signs_after_dropping():
    deltas = [torch.randn(6, 5, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    options = MergeOptions(method="dare-ties", drop_rate=0.3, seed=4)

    merged = combine(deltas, [1.0, 1.0, 1.0], options, "m")

    dropped = [drop_and_rescale(delta, 0.3, dare_generator(4, index, "m")) for index, delta in enumerate(deltas)]
    assert torch.allclose(merged, disjoint_mean(dropped), atol=1e-6)


def test_zero_drop_rate_is_plain_linear():
    deltas = [torch.randn(4, 4, generator=torch.Generator().manual_seed(i)) for i in range(2)]

    merged = combine(deltas, [0.4, 0.6], MergeOptions(method="dare", drop_rate=0.0), "m")

    assert torch.allclose(merged, 0.4 * deltas[0] + 0.6 * deltas[1], atol=1e-6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (MergeOptions(method="slerp"), "--method 'slerp'"),
        (MergeOptions(density=0.0), "--density 0.0"),
        (MergeOptions(drop_rate=1.0), "--drop-rate 1.0"),
        (MergeOptions(scale=float("nan")), "--lambda nan"),
    ],
)
def test_invalid_options_are_listed(options, message):
    assert any(message in problem for problem in options.problems())
