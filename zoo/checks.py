"""Argument checks: one rule each, and one message shape naming what was wrong and what
is allowed, e.g. "Synthetic: `num` must be an int >= 1. Received: 0".

The rule for booleans, decided once: `True` and `False` are not numbers here (Python's
`bool` is an `int`, but a boolean given for a count, a size or a weight is a mistake).
A value of the wrong kind raises `UserTypeError` (a TypeError and a ValueError), one
out of range `UserError` (a ValueError).
"""

import numbers

from zoo.errors import UserError, UserTypeError


def _prefix(who):
    return f"{who}: " if who else ""


def _received(name, value, keyed):
    return f"Received: {name}={value!r}" if keyed else f"Received: {value!r}"


def int_at_least(
    value, low: int, name: str, who: str | None = None, none: bool = False, keyed: bool = False
):
    """`value` as an int >= `low` (or None when `none`), else the message.

    Args:
        value: what the user gave.
        low: int. The smallest allowed.
        name: str. The parameter's name.
        who: str or None. The class or function it configures (the message's prefix).
        none: bool. None is allowed (and returned). Defaults to False.
        keyed: bool. The message shows "name=value" (a command's flags). Defaults to False.
    """
    if none and value is None:
        return None
    allowed = f"an int >= {low}" + (" or None" if none else "")
    message = f"{_prefix(who)}`{name}` must be {allowed}. {_received(name, value, keyed)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserTypeError(message)
    if value < low:
        raise UserError(message)
    return int(value)


def number_in(
    value,
    name: str,
    low: float | None = None,
    high: float | None = None,
    who: str | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a float in [low, high] (an end left out when `*_open`; None: unbounded)."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    allowed = "a number" + (" " + " and ".join(bounds) if bounds else "")
    message = f"{_prefix(who)}`{name}` must be {allowed}. Received: {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserTypeError(message)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise UserError(message)
    return float(value)


def one_of(value, allowed, name: str, who: str | None = None):
    """`value` if it is one of `allowed`, else the message listing them."""
    if value not in allowed:
        raise UserError(
            f"{_prefix(who)}`{name}` must be one of {list(allowed)}. Received: {value!r}"
        )
    return value


def image_size(value, name: str = "input_size", who: str | None = None, none: bool = False):
    """`value` as (height, width): an int is a square's side, a pair of ints >= 1 is
    (height, width) (a list, as a JSON file gives it back, too); None when `none`."""
    if none and value is None:
        return None
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    if not (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in pair)
    ):
        raise UserTypeError(
            f"{_prefix(who)}`{name}` must be an int or (height, width) of ints >= 1"
            + (" or None" if none else "")
            + f". Received: {value!r}"
        )
    if min(pair) < 1:
        raise UserError(
            f"{_prefix(who)}`{name}` must be an int or (height, width) of ints >= 1. "
            f"Received: {value!r}"
        )
    return int(pair[0]), int(pair[1])
