"""The FlexAttention block mask built from the tile plan: block lists and mask_mod are exact."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gnasim.config import GNAConfig  # noqa: E402
from gnasim.reference import full_mask  # noqa: E402
from gnasim_validate.flex import plan_blocks, query_windows, slot_coordinates  # noqa: E402
from gnasim_validate.permute import plan_layouts as layouts, token_coordinates  # noqa: E402
from gnasim_validate.plan import kernel_plan  # noqa: E402

CASES = [
    dict(input_size=(40,), window_size=9, stride=3, dilation=2, causal=True, q_tile=(8,), kv_tile=(4,)),
    dict(input_size=(10, 12), window_size=(5, 4), stride=(2, 3), dilation=(1, 2), causal=(False, True),
         q_tile=(4, 8), kv_tile=(4, 4)),
    dict(input_size=(16, 16), window_size=(12, 8), stride=(4, 4), q_tile=(4, 4), kv_tile=(4, 4)),
    dict(input_size=(6, 6, 8), window_size=(3, 4, 5), stride=(1, 2, 3), dilation=(2, 1, 1),
         causal=(False, False, True), q_tile=(2, 2, 4), kv_tile=(2, 2, 2)),
]


def permuted_reference(cfg: GNAConfig, plan) -> np.ndarray:
    """The literal N x N mask laid out as [groups, q slots, kv slots] (False on padding)."""
    mask = full_mask(cfg)
    q_lay, kv_lay = layouts(plan)
    _, q_orig = token_coordinates(q_lay)
    _, k_orig = token_coordinates(kv_lay)

    def flat(orig):
        o = orig.numpy()
        idx = np.ravel_multi_index(tuple(np.maximum(o[..., a], 0) for a in range(cfg.rank)), cfg.input_size)
        return np.where((o >= 0).all(-1), idx, -1)

    qi, ki = flat(q_orig), flat(k_orig)
    out = mask[np.maximum(qi, 0)[:, :, None], np.maximum(ki, 0)[:, None, :]]
    return out & (qi >= 0)[:, :, None] & (ki >= 0)[:, None, :]


@pytest.mark.parametrize("params", CASES, ids=["1d", "2d", "2d-full", "3d"])
def test_block_mask_matches_reference(params):
    cfg = GNAConfig(**params)
    plan = kernel_plan(cfg)
    ref = permuted_reference(cfg, plan)                    # [G, Nq, Nkv]
    BM, BN = plan.q_tile_size, plan.kv_tile_size
    G, Nq, Nkv = ref.shape
    blocks = ref.reshape(G, Nq // BM, BM, Nkv // BN, BN)
    visited, full = plan_blocks(plan)
    # every attended pair lies in a visited block
    assert not (blocks.any(axis=(2, 4)) & ~visited).any()
    # a full block: every real query of the Q tile attends every key slot
    real_q = (ref.any(-1)).reshape(G, Nq // BM, BM)
    all_keys = blocks.all(axis=4)                            # [G, nQ, BM, nKV]
    dense = (all_keys | ~real_q[..., None]).all(axis=2) & real_q.any(-1)[..., None]
    assert np.array_equal(full, dense & visited)
    assert full.sum() == plan.expected_visits().sum() - plan.expected_partial().sum()
    # the mask_mod lookup tables give the literal mask on real queries
    starts, ends = query_windows(plan)
    kc = slot_coordinates(plan, kv=True)
    keep = ((kc[None, None, :, :] >= starts[:, :, None, :]) & (kc[None, None, :, :] < ends[:, :, None, :])).all(-1)
    rows = ref.any(-1)
    assert np.array_equal(keep[rows], ref[rows])


def test_flex_eager_output():
    """Eager (CPU) FlexAttention with the plan's block mask equals masked softmax attention."""
    flex_mod = pytest.importorskip("torch.nn.attention.flex_attention")
    import warnings

    from gnasim_validate.flex import plan_block_mask
    from gnasim_validate.permute import permute, unpermute

    cfg = GNAConfig(**CASES[1])
    plan = kernel_plan(cfg)
    q_lay, kv_lay = layouts(plan)
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, *cfg.input_size, 2, 16, generator=gen) for _ in range(3))
    bm = plan_block_mask(plan, 2, "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = flex_mod.flex_attention(*(permute(t, lay).transpose(1, 2) for t, lay in
                                        ((q, q_lay), (k, kv_lay), (v, kv_lay))), block_mask=bm)
    out = unpermute(out.transpose(1, 2).contiguous(), q_lay)
    B, H, E = q.shape[0], q.shape[-2], q.shape[-1]
    flat = [t.double().reshape(B, -1, H, E).transpose(1, 2) for t in (q, k, v)]
    scores = (flat[0] @ flat[1].transpose(-1, -2) * E ** -0.5).masked_fill(
        ~torch.from_numpy(full_mask(cfg)), float("-inf"))
    ref = (torch.softmax(scores, -1) @ flat[2]).transpose(1, 2).reshape(q.shape)
    assert (out.double() - ref).abs().max().item() < 1e-5
