"""The e2e tests' numbers are never drawn twice in a run: tests count INVITEs per number."""
from tests.e2e.numbers import extension, number


def test_numbers_and_extensions_are_not_drawn_twice():
    # A 9-digit suffix leaves 10 numbers to draw from: all 10 come out, each once.
    drawn = [number("123456789") for _ in range(10)]
    assert sorted(drawn) == [f"91{d}123456789" for d in range(10)]
    extensions = [extension("12345") for _ in range(9)]
    assert sorted(extensions) == [f"{d}12345" for d in range(1, 10)]
