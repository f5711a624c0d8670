"""Measurements of synthetic-to-real adaptation: the domain gap, the P domain, the table."""

import dataclasses

import keras
import numpy as np
import pytest
from helpers import tiny_trunk

from zoo.data import sources
from zoo.data.synthetic import SceneSpec
from zoo.evaluation import adaptation
from zoo.methods import DomainAdversarial
from zoo.tasks import Contours, Depth, Normals

SPEC = SceneSpec(variant="----", mode="multi", resolution=32)


def test_domain_classifier_is_at_chance_on_one_distribution_and_perfect_on_separable_ones():
    rng = np.random.default_rng(0)
    same = [
        adaptation.domain_classifier_accuracy(
            rng.normal(size=(200, 16)), rng.normal(size=(200, 16)), seed=s
        )
        for s in range(5)
    ]
    assert abs(np.mean(same) - 0.5) < 0.05
    shifted = rng.normal(size=(200, 16))
    shifted[:, 3] += 6.0  # one feature separates the domains
    assert adaptation.domain_classifier_accuracy(rng.normal(size=(200, 16)), shifted) > 0.98
    # sizes are balanced: chance stays 0.5 for a constant classifier
    assert adaptation.domain_classifier_accuracy(
        rng.normal(size=(50, 4)), rng.normal(size=(300, 4)), folds=5
    ) == pytest.approx(0.5, abs=0.15)
    with pytest.raises(ValueError, match=r"\[N, D\] and \[M, D\]"):
        adaptation.domain_classifier_accuracy(np.zeros((4, 3)), np.zeros((4, 2)))


def _model():
    tasks = [
        t(SPEC, num_examples=8, eval_examples=16, head_width=8, harmonizer="replicate_channel")
        for t in (Contours, Depth, Normals)
    ]
    real = sources.real_photos("train", crop=32, size=64, crops_per_image=2)
    model = DomainAdversarial(tiny_trunk(), tasks, real=real, adapt_at="block1")
    model.compile(keras.optimizers.SGD(0.0))
    return model


def test_domain_gap_of_a_trunk_tells_scenes_from_photos():
    model = _model()
    synthetic, real = adaptation.heldout_domains(model, num=24)
    # 16 held-out scenes; 24 crops of the three held-out photos
    assert synthetic.shape == (16, 32, 32, 3) and real.shape == (24, 32, 32, 3)
    # grayscale harmonization reached both domains: the three channels are equal
    for images in (synthetic, real):
        np.testing.assert_array_equal(images[..., 0], images[..., 1])
    gaps = adaptation.domain_gap(model, num=24)
    assert list(gaps) == ["stem", "block1", "block2"]
    assert all(0.0 <= v <= 1.0 for v in gaps.values())
    # pooled features of the trunk equal a hand computation
    features = adaptation.pooled_features(model.trunk, real[:3], ["block1"])["block1"]
    expected = model.trunk(real[:3], training=False)["block1"].numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_zero_shot_scores_the_same_scenes_in_both_domains():
    model = _model()
    result = adaptation.zero_shot(model, num=8, batch_size=4)
    assert set(result) == {"synthetic", "P"}
    for domain in result.values():
        assert set(domain) == {"contours", "depth", "normals"}
        assert 0.0 <= domain["contours"]["ods_f_score"] <= 1.0
        assert 0.0 <= domain["normals"]["mean_angle"] <= 180.0
    p = adaptation.photo_variant(SPEC)
    assert p == dataclasses.replace(SPEC, variant="----P", split="test")
    assert result["synthetic"]["normals"] != result["P"]["normals"]  # other images


def test_runs_are_named_by_the_parts_that_tell_them_apart():
    names = adaptation._short_names(["s/3tasks/seed_0", "s/da_conv5/seed_0", "t/x"])
    assert list(names) == ["3tasks/seed_0", "da_conv5/seed_0", "t/x"]
    with pytest.raises(ValueError, match="twice"):
        adaptation._short_names(["a/b", "a/b"])


def test_first_filters_and_layers():
    trunk = tiny_trunk()
    assert adaptation.first_filters(trunk).shape[:3] == (7, 7, 3)
    assert adaptation.layers_of(trunk) == ["stem", "block1", "block2"]


def _record(row, seed, value):
    record = {"row": row, "seed": seed}
    for key, _, _ in adaptation.COLUMNS:
        record[key] = 0.5
    record["p_classification"] = value
    return record


def test_comparison_table_gives_mean_std_and_the_papers_numbers():
    records = [
        *(_record("3tasks", s, v) for s, v in enumerate([0.30, 0.31, 0.32])),
        *(_record("da_conv5", s, v) for s, v in enumerate([0.40, 0.41, 0.42])),
    ]
    table = adaptation.comparison_table(records)
    assert "| 3 tasks, DA conv5 | 3 |" in table
    assert "0.410 ± 0.010" in table  # mean ± sample std of 0.40, 0.41, 0.42
    assert "67.4 / 52.0 / 49.2" in table  # the paper's row
    assert "conv6" not in table  # a row without results is left out
    assert len(table.splitlines()) == 4


def test_compare_refuses_unknown_rows(tmp_path):
    with pytest.raises(ValueError, match=r"unknown rows \['da_conv9'\]"):
        adaptation.compare(["da_conv9"], [0], str(tmp_path))
