"""Weighted k-nearest-neighbour classification of embeddings (Wu et al. 2018's monitor
of self-supervised features, which solo-learn, lightly and VISSL report beside linear
evaluation).

A query's k most cosine-similar labelled embeddings vote for their classes with weight
exp(similarity / T); the class scores are the votes' sums (k = 20, T = 0.07 by
default). Nothing is trained, so the number measures the embedding itself. The queries
go in chunks: memory holds the labelled embeddings and one chunk's similarities, never
a queries x labelled matrix.
"""

import gin
import keras
import numpy as np

from zoo import checks
from zoo.errors import UserError
from zoo.tasks.base import pipeline
from zoo.tasks.classification import GlobalTask

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


def embedded(embed, task, split: str, batch_size: int = 64):
    """(embeddings [N, D], labels [N]) of every example of `task`'s `split` (each once;
    the training split too), embedded in inference mode by `embed` (a model of the
    task's inputs)."""
    xs, ys = [], []
    examples = pipeline([task], split, 1, repeat=False).unbatch().batch(batch_size)
    for x, y in examples:
        xs.append(keras.ops.convert_to_numpy(embed(x, training=False)))
        ys.append(y[task.name].numpy())
    if not xs:
        raise UserError(f"knn: {task.name!r} has no {split} examples.")
    return np.concatenate(xs), np.concatenate(ys)


class KnnMonitor(keras.callbacks.Callback):
    """kNN accuracy of a training run's trunk after each epoch (Wu et al. 2018's online
    monitor): the labelled training images of `task` are the bank, its held-out images
    the queries, both embedded by the run's trunk at `task`'s endpoint, globally
    average-pooled. The accuracy joins the epoch's logs as `knn_<task>_accuracy` (so
    TensorBoard and the run's printed epochs show it) and is printed.

    Give it to a run with
    `zoo.experiment.train.callbacks = [@zoo.evaluation.KnnMonitor()]` and its task
    (`zoo.evaluation.KnnMonitor.task = @monitor/zoo.tasks.Classification()`, harmonized
    as the run's inputs are).

    Args:
        task: a zoo.tasks global task (classification, pose): its labelled examples.
        every: int >= 1. Epochs between measurements. Defaults to 1.
        k: int. Defaults to 20.
        temperature: float. Defaults to 0.07.
        batch_size: int. Defaults to 64.
    """

    def __init__(self, task, every=1, k=K, temperature=TEMPERATURE, batch_size=64):
        super().__init__()
        if not isinstance(task, GlobalTask):
            raise UserError(
                f"KnnMonitor: `task` must be a global task (classification, pose). "
                f"Received: {task!r}"
            )
        self.task, self.classes = task, task.classes
        self.every = checks.int_at_least(every, 1, "every", "KnnMonitor")
        self.k, self.temperature = k, temperature
        self.batch_size = checks.int_at_least(batch_size, 1, "batch_size", "KnnMonitor")
        self.name = f"knn_{task.name}_accuracy"

    def measure(self, trunk) -> float:
        """The kNN accuracy of `trunk`'s pooled features."""
        endpoint = self.task.endpoint or list(trunk.output)[-1]
        pooled = keras.layers.GlobalAveragePooling2D()(trunk.output[endpoint])
        embed = keras.Model(trunk.input, pooled)
        bank, labels = embedded(embed, self.task, "train", self.batch_size)
        queries, truth = embedded(embed, self.task, "eval", self.batch_size)
        return knn_accuracy(
            bank, labels, queries, truth, self.classes, k=self.k, temperature=self.temperature
        )

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        trunk = getattr(self.model, "trunk", None)
        if trunk is None:
            raise UserError(f"KnnMonitor: the method {type(self.model).__name__} has no trunk.")
        accuracy = self.measure(trunk)
        if logs is not None:
            logs[self.name] = accuracy
        print(f"epoch {epoch + 1}: {self.name} {accuracy:.4f}", flush=True)


gin.external_configurable(KnnMonitor, module="zoo.evaluation")
