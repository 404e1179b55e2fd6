"""Per-axis GNA window rules (NATTEN semantics), vectorised over query or key indices.

All functions work on one axis in dilation-group-local coordinates: ``length`` is the group's own
length ``L_g``. ``start``/``end`` are the first key and one past the last key a query attends;
``q_start``/``q_end`` (the *inverse* window) the first and one past the last query attending a
key. Queries may lie beyond ``length`` (tile padding): the leader clamp then gives them the window
of the last stride group, as the kernels do.

The leader rule (which query of a stride group owns the group's window) is stated once, in
:func:`leader_offset`; every other rule here, the periodic pieces the plan engine compresses and
NATTEN's fast-path predicate read it from there.
"""

from __future__ import annotations

import numpy as np


def leader_offset(stride, causal):
    """Where a stride group's leader sits inside the group: its last query (causal) or its
    centre ``stride // 2`` (non-causal). Scalars give an ``int``, arrays an array."""
    if isinstance(stride, int) and isinstance(causal, (bool, int)):
        return stride - 1 if causal else stride // 2
    stride = np.asarray(stride, dtype=np.int64)
    return np.where(causal, stride - 1, stride // 2)


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
    return np.minimum(base + leader_offset(stride, causal), length - 1)


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


def inverse_window_bounds(j, length, window, stride, causal) -> tuple[np.ndarray, np.ndarray]:
    """``(q_start, q_end)`` of keys ``j`` (group-local): the queries attending key ``j`` are
    ``[q_start, q_end)``. The kernels' closed forms (``get_bwd_win_start/end``); every parameter
    may be a scalar or an array (broadcast element-wise)."""
    j = np.asarray(j, dtype=np.int64)
    left, right = window_extents(window)
    # distance from a non-causal leader to the last query of its stride group
    after = stride - 1 - leader_offset(stride, False)
    q_start_c = j
    q_end_c = np.minimum(((j + window) // stride + (j + window >= length)) * stride, length)
    q_start_n = (np.where(j >= window, j - right + after, 0) // stride) * stride
    q_end_n = np.where(j >= length - window, length, ((j + left + after + 1) // stride) * stride)
    return np.where(causal, q_start_c, q_start_n), np.where(causal, q_end_c, q_end_n)


Piece = tuple[int, int, bool]   # (first index, one past the last, shifts must be stride multiples)


def _cut(length: int, cuts: list[tuple[int, bool]]) -> list[Piece]:
    """Pieces ``[lo, hi)`` of ``[0, length)`` between sorted cut points; each cut carries whether
    the piece *before* it needs stride-multiple shifts."""
    out, lo = [], 0
    for hi, needs_stride in cuts:
        hi = min(max(hi, lo), length)
        if hi > lo:
            out.append((lo, hi, needs_stride))
        lo = hi
    return out


def window_pieces(length: int, window: int, stride: int, causal: bool) -> list[Piece]:
    """Query ranges on which ``start`` and ``end`` each either stay constant or move with the
    query: shifting a query by ``P`` (a multiple of ``stride`` where the piece says so) shifts its
    window bound by ``0`` or by ``P``. The plan engine compresses tiles inside one piece.

    Pieces: the left border (the window is clamped at key 0: non-causal ``[0, K)``, causal
    ``[0, q + 1)``), the interior (the leader's window, unclamped) and the right border
    (non-causal ``[L - K, L)``; causal ``[L - K, q + 1)``).
    """
    left, right = window_extents(window)
    off = leader_offset(stride, causal)
    lo_clamp, hi_clamp = (window - 1, length - 1) if causal else (left, length - 1 - right)

    def first_above(x: int) -> int:   # first query whose unclamped leader exceeds x
        return ((x - off) // stride + 1) * stride

    return _cut(length, [(first_above(lo_clamp), False), (first_above(hi_clamp), True),
                         (length, False)])


def inverse_window_pieces(length: int, window: int, stride: int, causal: bool) -> list[Piece]:
    """Key ranges on which ``q_start`` and ``q_end`` each either stay constant or move with the
    key (the counterpart of :func:`window_pieces` for :func:`inverse_window_bounds`)."""
    end_clamp = length - window                  # q_end = length from this key on
    if causal:                                   # q_start = j everywhere
        return _cut(length, [(end_clamp, True), (length, False)])
    start_free = window                          # q_start = 0 before this key
    lo, hi = sorted((start_free, end_clamp))
    # [0, lo): q_end moves with the key (or both are clamped when end_clamp = 0);
    # [lo, hi): both move (window < L/2) or both are clamped; [hi, L): q_start moves
    both_clamped = end_clamp < start_free
    return _cut(length, [(lo, end_clamp > 0), (hi, not both_clamped), (length, True)])


def attended_keys_total(length: int, window: int, stride: int, causal: bool) -> int:
    """Sum over the ``length`` real queries of the number of keys each attends, in closed form."""
    if not causal:
        return length * window
    # causal: size(i) = i + 1 - start(group(i)); start is shared by each stride group: the full
    # group g has start max(g*S + off + 1 - K, 0), positive for g >= g0.
    off = leader_offset(stride, True)
    total = length * (length + 1) // 2
    full_groups = length // stride
    g0 = max(0, -(-(window - 1 - off) // stride))
    if full_groups > g0:
        n = full_groups - g0
        first = g0 * stride + off + 1 - window
        last = (full_groups - 1) * stride + off + 1 - window
        total -= stride * n * (first + last) // 2
    rem = length - full_groups * stride
    if rem:
        total -= rem * max(length - window, 0)
    return int(total)
