"""The examples in the docstrings run."""

import doctest

import nof1
import nof1.sklearn


def test_docstring_examples():
    for module in (nof1, nof1.sklearn):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__
