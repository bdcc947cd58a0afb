"""Compute classification and ranking metrics from plain arrays.

The functions take sequences or numpy arrays, never models, so each result can be checked against
a hand-computed reference. They return Python floats, ints and lists, ready for JSON. Invalid
input raises `ValueError` with a one-line message that names the offending value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_class_indices(values, name: str, n_labels: int | None = None) -> np.ndarray:
    """Check that `values` are non-empty int class indices in [0, n_labels), return int64."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty, pass at least one class index")
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must contain int class indices, got dtype {array.dtype} "
                         f"(first value {array[0]!r})")
    if n_labels is not None:
        outside = np.flatnonzero((array < 0) | (array >= n_labels))
        if outside.size:
            first = int(outside[0])
            raise ValueError(f"{name}[{first}] = {int(array[first])} is outside the {n_labels} "
                             f"labels (valid indices 0 to {n_labels - 1}), "
                             f"{outside.size} such values in all")
    return array.astype(np.int64)


def _check_same_length(first, first_name: str, second, second_name: str) -> None:
    if len(first) != len(second):
        raise ValueError(f"{first_name} has length {len(first)} but {second_name} has length "
                         f"{len(second)}, pass one value per sample to each")


def _divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    result = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def classification_metrics(y_true, y_pred, labels: Sequence[str]) -> dict:
    """Compute accuracy, per-class and macro precision, recall and F1, and the confusion matrix.

    `y_true` and `y_pred` are sequences of int class indices into `labels`, one pair per sample.
    Conventions for empty classes: a class that is never predicted has precision 0, a class with
    no true samples (support 0) has recall 0, and F1 is 0 when precision + recall is 0. Macro
    averages are unweighted means over all of `labels`, including such empty classes.

    Returns a dict with `accuracy`, `macro_precision`, `macro_recall`, `macro_f1` (floats),
    `per_class` ({label: {"precision", "recall", "f1", "support"}}), `confusion` (a list of
    len(labels) rows, row = true class and column = predicted class, int counts) and `n` (the
    number of samples).

    Raises:
        ValueError: if `labels` is empty or has duplicates, the inputs differ in length, are
            empty, are not int, or hold an index outside `labels`.
    """
    labels = list(labels)
    if not labels:
        raise ValueError("labels is empty, pass the class names in index order")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"labels has duplicate names {duplicates}, each class needs its own name")
    _check_same_length(y_true, "y_true", y_pred, "y_pred")
    n_labels = len(labels)
    true = _as_class_indices(y_true, "y_true", n_labels)
    pred = _as_class_indices(y_pred, "y_pred", n_labels)

    confusion = np.bincount(true * n_labels + pred, minlength=n_labels * n_labels)
    confusion = confusion.reshape(n_labels, n_labels)
    true_positives = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = _divide_or_zero(true_positives, predicted)
    recall = _divide_or_zero(true_positives, support)
    f1 = _divide_or_zero(2 * precision * recall, precision + recall)

    per_class = {
        label: {"precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(support[i])}
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(true_positives.sum() / true.size),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "n": int(true.size),
    }


def _check_finite(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name}[{int(bad[0])}] = {array[bad[0]]} is not finite, "
                         "drop or fix that sample")
    return array


def _dcg(gains_in_rank_order: np.ndarray) -> float:
    ranks = np.arange(1, gains_in_rank_order.size + 1)
    return float(np.sum((2.0 ** gains_in_rank_order - 1.0) / np.log2(ranks + 1)))


def ndcg_at_k(query_ids, gains, scores, k: int = 10) -> float:
    """Compute nDCG@k averaged over queries.

    For each query, items are ranked by descending score, and items with equal scores keep their
    input order (a stable sort). With rank r counted from 1:

        DCG@k  = sum over the top k items of (2 ** gain - 1) / log2(r + 1)
        IDCG@k = DCG@k of the same items ranked by descending gain
        nDCG@k = DCG@k / IDCG@k

    The result is the unweighted mean of nDCG@k over the queries whose IDCG@k is above 0. A query
    whose gains are all 0 has nothing to rank and is skipped. `gains` are non-negative floats, for
    example relevance - 1 for Home Depot relevance in [1, 3], or a class index.

    Returns nan if no query has IDCG@k above 0.

    Raises:
        ValueError: if the inputs differ in length or are empty, `k` is not a positive int, or a
            gain is negative or not finite, or a score is not finite.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    _check_same_length(query_ids, "query_ids", gains, "gains")
    _check_same_length(query_ids, "query_ids", scores, "scores")
    if len(query_ids) == 0:
        raise ValueError("query_ids is empty, pass at least one (query, gain, score) sample")
    gains = _check_finite(gains, "gains")
    scores = _check_finite(scores, "scores")
    negative = np.flatnonzero(gains < 0)
    if negative.size:
        raise ValueError(f"gains[{int(negative[0])}] = {gains[negative[0]]} is negative, "
                         "gains must be >= 0")

    rows_by_query: dict[object, list[int]] = {}
    for row, query_id in enumerate(query_ids):
        rows_by_query.setdefault(_hashable(query_id), []).append(row)

    per_query = []
    for rows in rows_by_query.values():
        query_gains = gains[rows]
        query_scores = scores[rows]
        ideal = _dcg(np.sort(query_gains)[::-1][:k])
        if ideal == 0.0:
            continue
        order = np.argsort(-query_scores, kind="stable")
        per_query.append(_dcg(query_gains[order][:k]) / ideal)
    return float(np.mean(per_query)) if per_query else float("nan")


def _hashable(query_id):
    """Return `query_id` as a dict key, turning numpy scalars into Python values."""
    return query_id.item() if isinstance(query_id, np.generic) else query_id


def majority_baseline_accuracy(y_train, y_eval) -> float:
    """Return the accuracy on `y_eval` of always predicting the most frequent class of `y_train`.

    A tie between training classes goes to the smallest class index. Both inputs are sequences of
    int class indices.

    Raises:
        ValueError: if either input is empty or not int.
    """
    train = _as_class_indices(y_train, "y_train")
    evaluation = _as_class_indices(y_eval, "y_eval")
    classes, counts = np.unique(train, return_counts=True)
    # np.unique sorts the classes and argmax takes the first maximum, so ties go to the smallest.
    majority = classes[np.argmax(counts)]
    return float(np.mean(evaluation == majority))
