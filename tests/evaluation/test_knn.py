"""Weighted kNN against scikit-learn's KNeighborsClassifier on a toy embedding."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from zoo.errors import UserError
from zoo.evaluation.knn import knn_accuracy, knn_scores


def _toy(seed=0, n=300, q=120, d=8, classes=4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d))
    labels = rng.integers(0, classes, n + q)
    x = centres[labels] + rng.normal(scale=1.2, size=(n + q, d))
    return x[:n], labels[:n], x[n:], labels[n:], classes


def test_scores_are_scikit_learns_cosine_votes_weighted_by_exp_similarity():
    bank, labels, queries, truth, classes = _toy()
    temperature = 0.07
    reference = KNeighborsClassifier(
        n_neighbors=20, metric="cosine", weights=lambda d: np.exp((1 - d) / temperature)
    ).fit(bank, labels)
    scores = knn_scores(bank, labels, queries, classes, chunk=50)  # chunks give one answer
    np.testing.assert_allclose(
        scores / scores.sum(1, keepdims=True), reference.predict_proba(queries), atol=1e-5
    )
    np.testing.assert_array_equal(scores.argmax(1), reference.predict(queries))
    accuracy = knn_accuracy(bank, labels, queries, truth, classes)
    assert accuracy == pytest.approx(np.mean(reference.predict(queries) == truth))
    assert accuracy > 0.6  # well above the 0.25 of chance on these clusters


def test_few_labels_vote_all_and_bad_input_is_named():
    bank, labels, queries, _, classes = _toy(n=5)
    scores = knn_scores(bank, labels, queries, classes, k=20)
    assert (np.count_nonzero(scores, axis=1) <= len(set(labels))).all()
    with pytest.raises(UserError, match="one label per bank row"):
        knn_scores(bank, labels[:3], queries, classes)
    with pytest.raises(UserError, match=r"labels must be in \[0, 2\)"):
        knn_scores(bank, labels, queries, 2)
    with pytest.raises(UserError, match="differ in width"):
        knn_scores(bank, labels, queries[:, :3], classes)
    with pytest.raises(UserError, match="temperature"):
        knn_scores(bank, labels, queries, classes, temperature=0)


def test_the_monitor_logs_the_trunks_knn_accuracy_every_few_epochs():
    import keras
    from helpers import tiny_trunk

    from zoo.data.synthetic import SceneSpec
    from zoo.evaluation.knn import KnnMonitor
    from zoo.methods import MultiTask
    from zoo.tasks import Classification, Depth, Rotation

    single = SceneSpec(variant="----", mode="single", resolution=32)
    monitor = KnnMonitor(Classification(single, num_examples=30, eval_examples=16), every=2)
    model = MultiTask(tiny_trunk(), [Rotation(single, num_examples=16)], input_size=32)
    model.compile(keras.optimizers.Adam(1e-3))
    data = model.datasets(4)
    history = model.fit(data, steps_per_epoch=2, epochs=4, callbacks=[monitor], verbose=0)
    logged = history.history["knn_classification_accuracy"]
    assert len(logged) == 2 and all(0.0 <= a <= 1.0 for a in logged)  # epochs 2 and 4
    assert logged[-1] == pytest.approx(monitor.measure(model.trunk))  # the trained trunk's
    with pytest.raises(UserError, match="global task"):
        KnnMonitor(Depth(SceneSpec(variant="----", mode="multi", resolution=32)))
