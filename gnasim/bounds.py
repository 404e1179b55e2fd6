"""FLOP counts and the speedup bounds of the GNA paper (FLOP-wise, tile-level, end-to-end).

Functions of counts work on Python numbers or numpy arrays alike (one configuration, or one value
per sweep row): the same formula either way.
"""

from __future__ import annotations

from gnasim.errors import ConfigError


def attention_flops(pairs: int, batch: int, heads: int, head_dim: int, head_dim_v: int) -> int:
    """Forward FLOPs of attention over ``pairs`` (query, key) pairs: QK^T and PV matmuls.

    Each pair costs ``2 * head_dim`` (a dot product) plus ``2 * head_dim_v`` (a row of PV).
    """
    return int(pairs) * flops_per_pair(batch, heads, head_dim, head_dim_v)


def flops_per_pair(batch: int, heads: int, head_dim: int, head_dim_v: int) -> int:
    """FLOPs of one attended (query, key) pair over all batches and heads."""
    return 2 * (head_dim + head_dim_v) * batch * heads


def e2e_speedup(speedup, fraction):
    """Amdahl's law with an effective attention share ``fraction`` (floats or arrays)."""
    return 1.0 / ((1.0 - fraction) + fraction / speedup)


def amdahl(speedup: float, attention_fraction: float, full_attention_steps: int = 0,
           total_steps: int | None = None) -> float:
    """End-to-end speedup when a share ``f`` of the time is attention and it runs ``speedup`` x faster.

    With the first ``n`` of ``N`` diffusion steps kept as full attention, ``f`` becomes
    ``f * (N - n) / N``.
    """
    return e2e_speedup(speedup, effective_fraction(attention_fraction, full_attention_steps,
                                                   total_steps))


def effective_fraction(attention_fraction: float, full_attention_steps: int = 0,
                       total_steps: int | None = None) -> float:
    if not 0.0 <= attention_fraction <= 1.0:
        raise ConfigError(f"attention_fraction: must be in [0, 1], got {attention_fraction}")
    if full_attention_steps < 0:
        raise ConfigError(f"full_attention_steps: must be >= 0, got {full_attention_steps}")
    if full_attention_steps and total_steps is None:
        raise ConfigError("total_steps: required when full_attention_steps is given")
    if total_steps is None:
        return attention_fraction
    if total_steps < 1:
        raise ConfigError(f"total_steps: must be >= 1, got {total_steps}")
    if full_attention_steps > total_steps:
        raise ConfigError(
            f"full_attention_steps: {full_attention_steps} is more than total_steps {total_steps}")
    return attention_fraction * (total_steps - full_attention_steps) / total_steps
