"""Token permutation: NATTEN's tile-by-tile layout, padding, dilation groups, exact inverse."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from gnasim_validate.permute import TokenLayout, permute, token_coordinates, unpermute  # noqa: E402


def test_natten_example_order():
    # (4, 6) with tile (2, 3): tiles row-major, tokens row-major inside each tile
    lay = TokenLayout((4, 6), (2, 3), (1, 1))
    x = torch.arange(24).reshape(1, 4, 6, 1, 1)
    assert permute(x, lay).flatten()[:12].tolist() == [0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11]


def test_dilation_groups_fold_into_batch_and_pad():
    # L = 5, tile 2, dilation 2: padded to 8; group 0 = [0, 2, 4, pad], group 1 = [1, 3, pad, pad]
    lay = TokenLayout((5,), (2,), (2,))
    x = torch.arange(1, 6).reshape(1, 5, 1, 1)
    p = permute(x, lay)[:, :, 0, 0]
    assert p.tolist() == [[1, 3, 5, 0], [2, 4, 0, 0]]
    local, original = token_coordinates(lay)
    assert local[..., 0].tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert original[..., 0].tolist() == [[0, 2, 4, -1], [1, 3, -1, -1]]


@pytest.mark.parametrize("layout,tile,dilation", [
    ((37,), (8,), (3,)),
    ((6, 10), (4, 4), (1, 2)),
    ((5, 7, 9), (2, 2, 4), (2, 1, 2)),
])
def test_roundtrip_exact(layout, tile, dilation):
    lay = TokenLayout(layout, tile, dilation)
    x = torch.randn(3, *layout, 2, 5)
    p = permute(x, lay)
    assert p.shape == (3 * lay.groups, lay.tokens_per_group, 2, 5)
    assert p.is_contiguous()
    assert torch.equal(unpermute(p, lay), x)
    # batch index is b * groups + g: batch 1's first group follows batch 0's last group
    assert torch.equal(p[lay.groups:2 * lay.groups], permute(x[1:2], lay))


def test_tiles_are_contiguous_boxes():
    layout, tile, dilation = (6, 10), (2, 4), (1, 2)
    lay = TokenLayout(layout, tile, dilation)
    local, original = token_coordinates(lay)
    size = tile[0] * tile[1]
    for g in range(lay.groups):
        for t in range(lay.tokens_per_group // size):
            block = local[g, t * size:(t + 1) * size]
            for a in range(2):
                c = block[:, a]
                assert c.max() - c.min() == tile[a] - 1     # one tile-shaped box per tile
                assert int(c.min()) % tile[a] == 0
        real = original[g][original[g, :, 0] >= 0]
        # group g holds exactly the tokens whose coordinate on axis 1 is congruent to g
        assert bool((real[:, 1] % 2 == g).all())


def test_rejects_wrong_layout():
    lay = TokenLayout((4, 4), (2, 2), (1, 1))
    with pytest.raises(ValueError):
        permute(torch.zeros(1, 4, 5, 1, 1), lay)
