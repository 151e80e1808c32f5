"""PartialConv2d against plain convolution and a direct per-window evaluation of NVIDIA's formula."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inpaintlab.layers.partial_conv import PartialConv2d


def _random_hole(shape, p, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).double()


def _per_window(layer, x, hole):
    """NVIDIA's formula evaluated window by window (float64).

    x (B,C,H,W); hole (B,C or 1,H,W) 1 = hole -> (out (B,O,H',W'), new_hole (B,1,H',W')).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    valid = (1 - hole).expand_as(x) if layer.multi_channel else (1 - hole)
    window_size = valid.shape[1] * kh * kw  # every mask entry the window covers, padding included
    xp = F.pad(x, (pw, pw, ph, ph))  # zero padding = hole (valid 0 there)
    vp = F.pad(valid, (pw, pw, ph, ph))
    out_h = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    weight = layer.weight.double()
    out = torch.zeros(x.shape[0], layer.out_channels, out_h, out_w, dtype=torch.float64)
    new_hole = torch.zeros(x.shape[0], 1, out_h, out_w, dtype=torch.float64)
    for b in range(x.shape[0]):
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
                cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
                window, known = xp[b, :, rows, cols], vp[b, :, rows, cols]
                count = known.sum()
                if count == 0:
                    new_hole[b, 0, i, j] = 1
                    continue
                total = (weight * (window * known)[None]).sum(dim=(1, 2, 3))
                out[b, :, i, j] = total * window_size / count
                if layer.bias is not None:
                    out[b, :, i, j] += layer.bias.double()
    return out, new_hole


@pytest.mark.parametrize(
    "multi_channel,bias,stride,padding,dilation,mask_channels",
    [
        (True, True, 2, 1, 1, 3),
        (True, False, 1, 2, 2, 3),
        (True, True, 1, 1, 1, 1),  # 1-channel mask broadcast over the input channels
        (False, True, 2, 2, 1, 1),
    ],
)
def test_matches_per_window_formula(multi_channel, bias, stride, padding, dilation, mask_channels):
    torch.manual_seed(0)
    layer = PartialConv2d(3, 4, 3, stride, padding, dilation, bias=bias, multi_channel=multi_channel).double()
    if bias:
        nn.init.uniform_(layer.bias, -1, 1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64, generator=g)
    hole = _random_hole((2, mask_channels, 9, 10), 0.6, seed=2)
    hole[0, :, :5, :6] = 1  # a solid hole so that some windows see nothing
    out, new_hole = layer(x, hole)
    ref_out, ref_hole = _per_window(layer, x, hole)
    assert (ref_hole == 1).any() and (ref_hole == 0).any()
    assert torch.allclose(out, ref_out, atol=1e-10)
    expected_channels = 4 if multi_channel else 1
    assert new_hole.shape[1] == expected_channels
    assert torch.equal(new_hole, ref_hole.expand_as(new_hole))


def test_equals_plain_conv_when_nothing_is_missing():
    torch.manual_seed(0)
    pconv = PartialConv2d(3, 5, 3, stride=1, padding=0)
    conv = nn.Conv2d(3, 5, 3, stride=1, padding=0)
    conv.load_state_dict(pconv.state_dict())
    x = torch.randn(2, 3, 12, 12)
    for hole in (None, torch.zeros(2, 3, 12, 12), torch.zeros(2, 1, 12, 12)):
        out, new_hole = pconv(x, hole)
        assert torch.allclose(out, conv(x), atol=1e-5)
        assert not new_hole.any()
    # With padding the interior is still a plain conv; border windows are renormalised (padding = hole).
    pconv.padding, conv.padding = (1, 1), (1, 1)
    out, _ = pconv(x)
    plain = conv(x)
    assert torch.allclose(out[..., 1:-1, 1:-1], plain[..., 1:-1, 1:-1], atol=1e-5)
    corner_scale = 9 / 4  # a corner window sees 2x2 of its 3x3 pixels
    bias = conv.bias.view(1, -1)
    assert torch.allclose(out[..., 0, 0], (plain[..., 0, 0] - bias) * corner_scale + bias, atol=1e-5)


def test_fully_hole_windows_output_exact_zero_even_with_bias():
    layer = PartialConv2d(2, 3, 3, padding=1)
    nn.init.constant_(layer.bias, 5.0)
    x = torch.randn(1, 2, 10, 10)
    hole = torch.zeros(1, 1, 10, 10)
    hole[..., 2:9, 2:9] = 1
    out, new_hole = layer(x, hole)
    inner = torch.zeros(10, 10, dtype=torch.bool)
    inner[3:8, 3:8] = True  # windows entirely inside the 7x7 hole
    assert torch.equal(new_hole[0, 0].bool(), inner)
    assert (out[0][:, inner] == 0).all()
    assert (out[0][:, ~inner] != 0).all()


def test_hole_shrinks_monotonically_through_a_stack():
    torch.manual_seed(0)
    layers = [PartialConv2d(4 if i else 3, 4, 3, padding=1) for i in range(8)]
    x, hole = torch.randn(1, 3, 24, 24), torch.zeros(1, 1, 24, 24)
    hole[..., 4:20, 6:22] = 1
    sizes = [hole.sum().item()]
    for layer in layers:
        x, new_hole = layer(x, hole)
        assert (new_hole[:, :1] <= hole[:, :1]).all(), "a known pixel became a hole"
        hole = new_hole
        sizes.append(hole[:, :1].sum().item())
    assert all(a > b for a, b in zip(sizes, sizes[1:]) if a > 0)
    assert sizes[-1] == 0  # 3x3 windows erode the 16x16 hole by one pixel per side per layer


def test_no_gradient_reaches_hole_inputs():
    layer = PartialConv2d(3, 4, 3, padding=1)
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    hole = _random_hole((1, 3, 8, 8), 0.5, seed=3).float()
    out, _ = layer(x, hole)
    out.square().sum().backward()
    assert (x.grad[hole.bool()] == 0).all()
    assert (x.grad[~hole.bool()] != 0).any()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_is_finite_and_close(dtype):
    torch.manual_seed(0)
    layer = PartialConv2d(3, 4, 3, padding=1)
    x = torch.randn(1, 3, 16, 16)
    hole = torch.zeros(1, 1, 16, 16)
    hole[..., 4:12, 4:12] = 1
    reference, _ = layer(x, hole)
    with torch.autocast("cpu", dtype=dtype):
        out, new_hole = layer(x, hole)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert torch.allclose(out.float(), reference, rtol=0.05, atol=0.05)
    # the same inputs and weights stored in low precision (no autocast)
    out_low, _ = layer.to(dtype)(x.to(dtype), hole.to(dtype))
    assert out_low.dtype == dtype and torch.isfinite(out_low).all()
    assert (out_low[..., 5:11, 5:11] == 0).all()


def test_channel_parts_equal_concatenated_features_and_masks():
    torch.manual_seed(0)
    layer = PartialConv2d(5, 4, 3, stride=2, padding=1).double()
    g = torch.Generator().manual_seed(4)
    up, skip = torch.randn(2, 2, 10, 10, generator=g).double(), torch.randn(2, 3, 10, 10, generator=g).double()
    up_hole, skip_hole = _random_hole((2, 1, 10, 10), 0.5, 5), _random_hole((2, 3, 10, 10), 0.5, 6)
    out, new_hole = layer([up, skip], [up_hole, skip_hole])
    full_hole = torch.cat([up_hole.expand(-1, 2, -1, -1), skip_hole], 1)
    expected, expected_hole = _per_window(layer, torch.cat([up, skip], 1), full_hole)
    assert torch.allclose(out, expected, atol=1e-10)
    assert torch.equal(new_hole, expected_hole.expand_as(new_hole))
    out_none, _ = layer([up, skip], [None, skip_hole])
    assert torch.allclose(out_none, layer([up, skip], [torch.zeros_like(up_hole), skip_hole])[0], atol=1e-12)


def test_rejects_masks_of_the_wrong_shape():
    layer = PartialConv2d(3, 4, 3, padding=1)
    with pytest.raises(ValueError, match="hole mask"):
        layer(torch.randn(1, 3, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="hole mask"):
        layer(torch.randn(1, 3, 8, 8), torch.zeros(1, 3, 4, 8))
    with pytest.raises(ValueError, match="one hole mask"):
        layer([torch.randn(1, 1, 8, 8), torch.randn(1, 2, 8, 8)], [torch.zeros(1, 1, 8, 8)])
    with pytest.raises(ValueError, match="expected 3"):
        layer([torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8)], [None, None])
