"""Per-axis GNA window rules (NATTEN semantics), vectorised over query indices.

All functions work on one axis in dilation-group-local coordinates: ``length`` is the group's own
length ``L_g``. ``start``/``end`` are the first key and one past the last key a query attends.
Queries may lie beyond ``length`` (tile padding): the leader clamp then gives them the window of
the last stride group, as the kernels do.
"""

from __future__ import annotations

import numpy as np


def window_extents(window: int) -> tuple[int, int]:
    """Keys left and right of the centre: odd K is symmetric, even K has the larger LEFT side."""
    left = window // 2
    right = window // 2 + window % 2 - 1
    return left, right


def group_lengths(length: int, dilation: int) -> np.ndarray:
    """True length ``ceil((L - g) / D)`` of each dilation group ``g = 0..D-1``."""
    g = np.arange(dilation, dtype=np.int64)
    return (length - g + dilation - 1) // dilation


def leader(q, length, stride, causal):
    """The query whose window all queries of ``q``'s stride group share (centre or last)."""
    base = (np.asarray(q, dtype=np.int64) // stride) * stride
    offset = np.where(causal, stride - 1, stride // 2)
    return np.minimum(base + offset, length - 1)


def window_bounds(q, length, window, stride, causal) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` of each query's window. Every parameter may be a scalar or an array
    (broadcast element-wise), so many axes can be evaluated in one numpy pass."""
    q = np.asarray(q, dtype=np.int64)
    lead = leader(q, length, stride, causal)
    left, right = window_extents(window)
    centre = np.minimum(np.maximum(lead, left), length - 1 - right)
    start = np.where(causal, np.maximum(lead - window + 1, 0), centre - left)
    end = np.where(causal, np.minimum(q + 1, length), start + window)
    return start, end


def window_start(q, length: int, window: int, stride: int, causal: bool) -> np.ndarray:
    """First key attended by each query ``q``."""
    return window_bounds(q, length, window, stride, causal)[0]


def window_end(q, length: int, window: int, stride: int, causal: bool) -> np.ndarray:
    """One past the last key attended by each query ``q``."""
    return window_bounds(q, length, window, stride, causal)[1]


def attended_keys_total(length: int, window: int, stride: int, causal: bool) -> int:
    """Sum over the ``length`` real queries of the number of keys each attends, in closed form."""
    if not causal:
        return length * window
    # causal: size(i) = i + 1 - start(group(i)); start is shared by each stride group.
    total = length * (length + 1) // 2
    full_groups = length // stride
    # full group g has start max(g*S + S - K, 0): positive for g >= g0.
    g0 = max(0, -(-(window - stride) // stride))
    if full_groups > g0:
        n = full_groups - g0
        first = g0 * stride + stride - window
        last = (full_groups - 1) * stride + stride - window
        total -= stride * n * (first + last) // 2
    rem = length - full_groups * stride
    if rem:
        total -= rem * max(length - window, 0)
    return int(total)
