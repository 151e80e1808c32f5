"""The examples in docstrings that are written as runnable doctests run, and hold."""

import doctest

import pytest

from inpaintlab import budget, detail, metrics, pretrained, select


@pytest.mark.parametrize("module", [budget, detail, metrics, pretrained, select], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0 and result.failed == 0, result
