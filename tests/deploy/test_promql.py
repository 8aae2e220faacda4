"""The operand splitter the end-to-end test relies on."""

from __future__ import annotations

from .promql import operands


def test_comparisons_and_set_operators_are_split_at_the_top_level_only() -> None:
    assert operands('up{job=~"a|b"} == 0') == ['up{job=~"a|b"}']
    assert operands("rate(x[5m]) > 0 unless rate(y[5m]) > 0") == ["rate(x[5m])", "rate(y[5m])"]
    assert operands('a > (14.4 * 0.01) and on () sum(b{s!~"2.."}) == 0') == [
        "a",
        'sum(b{s!~"2.."})',
    ]
    assert operands(
        'label_replace(absent(up{job="m"} == 1), "job", "m", "", "") or absent(up{job="l"} == 1)'
    ) == ['up{job="m"}', 'up{job="l"}']
    assert operands("time() - last_poll > 900") == ["time() - last_poll"]
