"""Weighted k-nearest-neighbour classification of embeddings (Wu et al. 2018's monitor
of self-supervised features, which solo-learn, lightly and VISSL report beside linear
evaluation).

A query's k most cosine-similar labelled embeddings vote for their classes with weight
exp(similarity / T); the class scores are the votes' sums (k = 20, T = 0.07 by
default). Nothing is trained, so the number measures the embedding itself. The queries
go in chunks: memory holds the labelled embeddings and one chunk's similarities, never
a queries x labelled matrix.
"""

import numpy as np

from zoo import checks
from zoo.errors import UserError

K = 20
TEMPERATURE = 0.07


def _normalised(x, name):
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise UserError(f"knn: `{name}` must be [N, D] embeddings. Received shape {x.shape}.")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_scores(
    bank,
    bank_labels,
    queries,
    classes: int,
    k: int = K,
    temperature: float = TEMPERATURE,
    chunk: int = 1024,
) -> np.ndarray:
    """[Q, classes] weighted votes of each query's `k` nearest labelled embeddings.

    Args:
        bank: [N, D] labelled embeddings (L2-normalised here).
        bank_labels: [N] ints in [0, classes).
        queries: [Q, D] embeddings to classify (L2-normalised here).
        classes: int >= 2.
        k: int >= 1. Neighbours; all N when N < k. Defaults to 20.
        temperature: float > 0. Defaults to 0.07.
        chunk: int >= 1. Queries per similarity matrix. Defaults to 1024.
    """
    bank, queries = _normalised(bank, "bank"), _normalised(queries, "queries")
    labels = np.asarray(bank_labels).astype(np.int64).reshape(-1)
    checks.int_at_least(classes, 2, "classes", "knn")
    checks.int_at_least(k, 1, "k", "knn")
    checks.number_in(temperature, "temperature", low=0, low_open=True, who="knn")
    if len(labels) != len(bank) or not len(bank):
        raise UserError(
            f"knn: `bank_labels` must give one label per bank row ({len(bank)} rows, at "
            f"least one). Received {len(labels)} labels."
        )
    if labels.min() < 0 or labels.max() >= classes:
        raise UserError(f"knn: labels must be in [0, {classes}). Received {sorted(set(labels))}.")
    if bank.shape[1] != queries.shape[1]:
        raise UserError(
            f"knn: bank and queries differ in width: {bank.shape[1]} vs {queries.shape[1]}."
        )
    k = min(k, len(bank))
    scores = np.zeros((len(queries), classes), np.float64)
    for start in range(0, len(queries), chunk):
        similarity = queries[start : start + chunk] @ bank.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.exp(
            np.take_along_axis(similarity, nearest, 1).astype(np.float64) / temperature
        )
        votes = np.zeros((len(nearest), classes), np.float64)
        np.add.at(votes, (np.arange(len(nearest))[:, None], labels[nearest]), weights)
        scores[start : start + chunk] = votes
    return scores


def knn_accuracy(bank, bank_labels, queries, query_labels, classes, **kwargs) -> float:
    """The share of queries whose highest-scoring class (`knn_scores`) is their label."""
    predicted = knn_scores(bank, bank_labels, queries, classes, **kwargs).argmax(1)
    return float(np.mean(predicted == np.asarray(query_labels).reshape(-1)))
