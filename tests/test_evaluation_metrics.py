"""Tests for adapters.evaluation_metrics against hand-computed references."""

import math

import numpy as np
import pytest

from adapters.evaluation_metrics import (
    classification_metrics,
    majority_baseline_accuracy,
    ndcg_at_k,
)

LABELS = ["irrelevant", "partial", "relevant"]
TOLERANCE = 1e-9


def test_classification_three_class_reference():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 2, 1, 2, 2, 2, 2, 0]
    # Confusion, rows = true, columns = predicted:
    #   true 0: [2, 0, 1]   true 1: [0, 1, 1]   true 2: [1, 0, 3]
    # Column sums (predicted) 3, 1, 5, row sums (support) 3, 2, 4.
    # precision = 2/3, 1/1, 3/5
    # recall    = 2/3, 1/2, 3/4
    # f1        = 2/3, 2 * 1 * 0.5 / 1.5 = 2/3, 2 * 0.6 * 0.75 / 1.35 = 2/3
    metrics = classification_metrics(y_true, y_pred, LABELS)

    assert metrics["confusion"] == [[2, 0, 1], [0, 1, 1], [1, 0, 3]]
    assert metrics["n"] == 9
    assert metrics["accuracy"] == pytest.approx(6 / 9, abs=TOLERANCE)
    assert metrics["macro_precision"] == pytest.approx((2 / 3 + 1 + 0.6) / 3, abs=TOLERANCE)
    assert metrics["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 0.75) / 3, abs=TOLERANCE)
    assert metrics["macro_f1"] == pytest.approx(2 / 3, abs=TOLERANCE)
    assert metrics["per_class"]["partial"]["precision"] == pytest.approx(1.0, abs=TOLERANCE)
    assert metrics["per_class"]["partial"]["recall"] == pytest.approx(0.5, abs=TOLERANCE)
    assert metrics["per_class"]["relevant"]["precision"] == pytest.approx(0.6, abs=TOLERANCE)
    assert metrics["per_class"]["relevant"]["recall"] == pytest.approx(0.75, abs=TOLERANCE)
    assert [metrics["per_class"][label]["support"] for label in LABELS] == [3, 2, 4]


def test_classification_accepts_numpy_arrays():
    y_true = np.array([0, 1, 2, 2], dtype=np.int32)
    y_pred = np.array([0, 1, 2, 1], dtype=np.int64)

    metrics = classification_metrics(y_true, y_pred, LABELS)

    assert metrics["accuracy"] == pytest.approx(0.75, abs=TOLERANCE)
    assert isinstance(metrics["accuracy"], float)
    assert isinstance(metrics["confusion"][0][0], int)


def test_never_predicted_class_zero_precision():
    # Class 1 is never predicted, so its precision is 0 by convention and its f1 is 0.
    metrics = classification_metrics([0, 1, 2], [0, 0, 2], LABELS)

    partial = metrics["per_class"]["partial"]
    assert partial["precision"] == 0.0
    assert partial["recall"] == 0.0
    assert partial["f1"] == 0.0
    # irrelevant: precision 1/2, recall 1, so macro precision = (0.5 + 0 + 1) / 3.
    assert metrics["macro_precision"] == pytest.approx(1.5 / 3, abs=TOLERANCE)


def test_unsupported_class_counts_in_macro():
    # Class 2 has no true samples and is never predicted, so its recall is 0. It still
    # counts in the macro mean, which is over all three labels.
    metrics = classification_metrics([0, 1], [0, 1], LABELS)

    assert metrics["per_class"]["relevant"]["support"] == 0
    assert metrics["per_class"]["relevant"]["recall"] == 0.0
    assert metrics["accuracy"] == pytest.approx(1.0, abs=TOLERANCE)
    assert metrics["macro_recall"] == pytest.approx(2 / 3, abs=TOLERANCE)


def test_classification_leaves_inputs_unchanged():
    y_true = [0, 1, 2]
    y_pred = [2, 1, 0]
    labels = list(LABELS)

    classification_metrics(y_true, y_pred, labels)

    assert y_true == [0, 1, 2]
    assert y_pred == [2, 1, 0]
    assert labels == LABELS


@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels", "message"),
    [
        ([0, 1], [0], LABELS, "y_true has length 2 but y_pred has length 1"),
        ([], [], LABELS, "y_true is empty"),
        ([0, 3], [0, 1], LABELS, r"y_true\[1\] = 3 is outside the 3 labels"),
        ([0, 1], [0, -1], LABELS, r"y_pred\[1\] = -1 is outside"),
        ([0.0, 1.0], [0, 1], LABELS, "must contain int class indices"),
        ([0], [0], [], "labels is empty"),
        ([0], [0], ["a", "a"], "duplicate names"),
    ],
)
def test_classification_rejects_invalid_input(y_true, y_pred, labels, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, y_pred, labels)


def test_ndcg_perfect_ranking_is_one():
    query_ids = ["a", "a", "a", "b", "b"]
    gains = [2.0, 1.0, 0.0, 0.0, 1.5]
    scores = [0.9, 0.5, 0.1, 0.2, 0.8]

    assert ndcg_at_k(query_ids, gains, scores) == pytest.approx(1.0, abs=TOLERANCE)


def test_ndcg_three_items_reference():
    # Ranked by score: items 1, 2, 0 with gains 0, 1, 2.
    # DCG  = (2^0 - 1)/log2(2) + (2^1 - 1)/log2(3) + (2^2 - 1)/log2(4)
    #      = 0 + 0.6309297536 + 1.5 = 2.1309297536
    # IDCG = 3/log2(2) + 1/log2(3) + 0 = 3.6309297536
    # nDCG = 2.1309297536 / 3.6309297536 = 0.5868826714
    gains = [2.0, 0.0, 1.0]
    scores = [0.1, 0.9, 0.5]

    result = ndcg_at_k([7, 7, 7], gains, scores, k=10)

    assert result == pytest.approx(0.5868826714, abs=1e-9)


def test_ndcg_cutoff_keeps_top_k_only():
    # With k = 1 the top item has gain 0 but the ideal top item has gain 2, so nDCG@1 = 0.
    # With k = 2: DCG = 0 + 1/log2(3) = 0.6309297536, IDCG = 3 + 1/log2(3) = 3.6309297536.
    gains = [2.0, 0.0, 1.0]
    scores = [0.1, 0.9, 0.5]

    assert ndcg_at_k([1, 1, 1], gains, scores, k=1) == pytest.approx(0.0, abs=TOLERANCE)
    assert ndcg_at_k([1, 1, 1], gains, scores, k=2) == pytest.approx(
        (1 / math.log2(3)) / (3 + 1 / math.log2(3)), abs=TOLERANCE
    )


def test_ndcg_ties_keep_input_order():
    # Equal scores rank in input order: gain 0 first, then gain 1.
    # DCG = 0 + 1/log2(3) = 0.6309297536 and IDCG = 1, so nDCG = 0.6309297536.
    # Ranking the gain-1 item first instead would give 1.0.
    result = ndcg_at_k(["q", "q"], [0.0, 1.0], [0.5, 0.5])

    assert result == pytest.approx(1 / math.log2(3), abs=TOLERANCE)


def test_ndcg_skips_query_with_zero_ideal_dcg():
    # Query "a" is ranked perfectly (1.0). Query "b" has only zero gains and is skipped,
    # so the mean is 1.0 rather than (1.0 + 0.0) / 2.
    query_ids = ["a", "a", "b", "b"]
    gains = [1.0, 0.0, 0.0, 0.0]
    scores = [0.9, 0.1, 0.3, 0.7]

    assert ndcg_at_k(query_ids, gains, scores) == pytest.approx(1.0, abs=TOLERANCE)


def test_ndcg_returns_nan_when_no_query_counts():
    assert math.isnan(ndcg_at_k(["a", "b"], [0.0, 0.0], [0.1, 0.2]))


def test_ndcg_averages_interleaved_queries():
    # Query 1 contains the three-item reference case (0.5868826714) interleaved with query 2,
    # which is ranked perfectly (1.0). Mean = (0.5868826714 + 1.0) / 2 = 0.7934413357.
    query_ids = np.array([1, 2, 1, 2, 1])
    gains = np.array([2.0, 1.0, 0.0, 0.0, 1.0])
    scores = np.array([0.1, 0.6, 0.9, 0.4, 0.5])

    result = ndcg_at_k(query_ids, gains, scores)

    assert result == pytest.approx(0.7934413357, abs=1e-9)


@pytest.mark.parametrize(
    ("query_ids", "gains", "scores", "k", "message"),
    [
        (["a", "a"], [1.0], [0.1, 0.2], 10, "query_ids has length 2 but gains has length 1"),
        (["a"], [1.0], [0.1, 0.2], 10, "query_ids has length 1 but scores has length 2"),
        ([], [], [], 10, "query_ids is empty"),
        (["a"], [1.0], [0.1], 0, "k must be a positive int, got 0"),
        (["a"], [-1.0], [0.1], 10, r"gains\[0\] = -1.0 is negative"),
        (["a", "a"], [1.0, 0.0], [0.1, float("nan")], 10, r"scores\[1\] = nan is not finite"),
    ],
)
def test_ndcg_rejects_invalid_input(query_ids, gains, scores, k, message):
    with pytest.raises(ValueError, match=message):
        ndcg_at_k(query_ids, gains, scores, k=k)


def test_majority_baseline_most_frequent_class():
    # Class 2 is the most frequent in training, and 2 of the 4 evaluation labels are 2.
    assert majority_baseline_accuracy([2, 2, 1, 0, 2], [2, 0, 2, 1]) == pytest.approx(
        0.5, abs=TOLERANCE
    )


def test_majority_baseline_tie_smallest_class():
    # Classes 1 and 2 tie in training, so class 1 is predicted: 1 of 3 evaluation labels.
    assert majority_baseline_accuracy([2, 1, 2, 1], [1, 2, 2]) == pytest.approx(
        1 / 3, abs=TOLERANCE
    )


@pytest.mark.parametrize(
    ("y_train", "y_eval", "message"),
    [
        ([], [0], "y_train is empty"),
        ([0], [], "y_eval is empty"),
        ([0.5], [0], "y_train must contain int class indices"),
    ],
)
def test_majority_baseline_rejects_invalid_input(y_train, y_eval, message):
    with pytest.raises(ValueError, match=message):
        majority_baseline_accuracy(y_train, y_eval)
