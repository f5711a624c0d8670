import os

import table


def test_the_reliability_page_is_what_the_tests_check():
    """docs/reliability.md equals the page rendered from the reliability tests' case
    tables and docstrings."""
    with open(table.PAGE) as f:
        page = f.read()
    relative = os.path.relpath(table.PAGE, table.ROOT)
    assert page == table.render(), (
        f"{relative} is out of date: run `python tests/reliability/table.py` and commit it"
    )
