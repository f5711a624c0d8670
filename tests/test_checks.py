"""zoo.checks: the one rule per kind of argument, booleans refused, the message shape."""

import pytest

from zoo import checks
from zoo.data.synthetic import SceneSpec
from zoo.errors import UserError, UserTypeError
from zoo.tasks import Rotation


def test_int_at_least():
    assert checks.int_at_least(3, 1, "num") == 3
    assert checks.int_at_least(None, 1, "size", none=True) is None
    with pytest.raises(UserError, match=r"^Synthetic: `num` must be an int >= 1\. Received: 0$"):
        checks.int_at_least(0, 1, "num", "Synthetic")
    for wrong in (True, 2.0, "3", None):
        with pytest.raises(UserTypeError, match="must be an int >= 1. Received"):
            checks.int_at_least(wrong, 1, "num")
    with pytest.raises(UserError, match=r"an int >= 2 or None\. Received: batch=1$"):
        checks.int_at_least(1, 2, "batch", none=True, keyed=True)


def test_number_in():
    assert checks.number_in(0.5, "p", 0, 1) == 0.5
    assert checks.number_in(1, "p", 0, 1) == 1.0
    with pytest.raises(UserError, match=r"`m` must be a number >= 0 and < 1\. Received: 1$"):
        checks.number_in(1, "m", 0, 1, high_open=True)
    with pytest.raises(UserError, match=r"LARS: `t` must be a number > 0\. Received: 0$"):
        checks.number_in(0, "t", 0, who="LARS", low_open=True)
    for wrong in (False, "0.1", None):
        with pytest.raises(UserTypeError, match="must be a number"):
            checks.number_in(wrong, "w", 0)
    with pytest.raises(UserError, match=r"must be one of \['a', 'b'\]\. Received: 'c'"):
        checks.one_of("c", ("a", "b"), "mode")


def test_a_boolean_count_is_refused_where_it_was_taken_before():
    with pytest.raises(UserTypeError, match="Rotation: `num_examples` must be an int >= 1"):
        Rotation(SceneSpec(resolution=32), num_examples=True)


def test_image_size():
    assert checks.image_size(64) == (64, 64)
    assert checks.image_size((425, 560)) == checks.image_size([425, 560]) == (425, 560)
    assert checks.image_size(None, none=True) is None
    for bad in ((0, 4), -1):
        with pytest.raises(UserError, match=r"`input_size` must be an int or \(height, width\)"):
            checks.image_size(bad)
    for bad in ((4,), (4, 4, 3), "64", (True, 4), 6.0, None):
        with pytest.raises(UserTypeError, match=r"Received: "):
            checks.image_size(bad, who="MultiTask")
