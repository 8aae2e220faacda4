"""Just enough PromQL structure for the end-to-end check: the operands of an alert expression.

An alert expression returns data only while it fires. What must return data while nothing is
wrong are its *operands*: the sides of top-level ``and``/``or``/``unless`` with their top-level
comparison (``> 0``, ``== 1`` ...) removed, and the argument of ``absent(...)``.
"""

from __future__ import annotations

import re

_SET_OPERATOR = re.compile(r"\b(and|or|unless)\b")
_COMPARISON = re.compile(r"==|!=|>=|<=|>|<")
_MODIFIER = re.compile(r"^\s*(on|ignoring)\s*\([^)]*\)\s*")


def _top_level(expr: str) -> list[bool]:
    """For each character: is it outside every (), [], {} and string?"""
    depth = 0
    quote: str | None = None
    flags = []
    for char in expr:
        if quote:
            flags.append(False)
            if char == quote:
                quote = None
            continue
        if char in "\"'`":
            quote = char
            flags.append(False)
            continue
        if char in "([{":
            depth += 1
            flags.append(False)
            continue
        if char in ")]}":
            depth -= 1
            flags.append(False)
            continue
        flags.append(depth == 0)
    return flags


def _split(expr: str, pattern: re.Pattern[str]) -> list[str]:
    top = _top_level(expr)
    parts, start = [], 0
    for match in pattern.finditer(expr):
        if all(top[match.start() : match.end()]):
            parts.append(expr[start : match.start()])
            start = match.end()
    parts.append(expr[start:])
    return [part.strip() for part in parts]


def _absent_argument(expr: str) -> str | None:
    index = expr.find("absent(")
    if index < 0:
        return None
    start = index + len("absent(")
    depth = 1
    for position in range(start, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[position], 0)
        if depth == 0:
            return expr[start:position]
    raise ValueError(f"unbalanced absent( in {expr!r}")


def operands(expr: str) -> list[str]:
    """The sub-expressions of an alert that must return data while the alert does not fire."""
    result = []
    for part in _split(expr, _SET_OPERATOR):
        part = _MODIFIER.sub("", part)
        inner = _absent_argument(part)
        if inner is not None:
            result += operands(inner)
            continue
        result.append(_split(part, _COMPARISON)[0])
    return result
