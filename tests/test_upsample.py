"""x2 upsampling layers: the resize-conv has no checkerboard, and trained transposed weights map onto it."""

import pytest
import torch
from torch import nn

from inpaintlab.layers.upsample import ResizeConv2d, resize_conv_weight, upsample2x

# The transposed convolutions LGNet uses: the U-Nets' k4 p1 and the local net's k3 p1 output_padding 1.
TRANSPOSED = [(4, 1, 0), (3, 1, 1)]


def _interior_spread(y):
    """Max - min over the interior (2 px border dropped) of each channel, (B,C,H,W) -> max over channels."""
    inner = y[..., 2:-2, 2:-2]
    return (inner.amax((-2, -1)) - inner.amin((-2, -1))).max().item()


@pytest.mark.parametrize("kernel,padding,output_padding", TRANSPOSED)
def test_both_kinds_double_the_size_and_only_transposed_draws_a_grid(kernel, padding, output_padding):
    """On a constant input the transposed layer gives a 2-pixel periodic pattern (its even and odd output
    pixels have their own kernels); the resize-conv gives a constant away from the zero-padded border."""
    torch.manual_seed(0)
    flat = torch.ones(1, 4, 8, 8)
    transposed = upsample2x("transposed", 4, 5, kernel, padding, output_padding)
    resize = upsample2x("resize_conv", 4, 5, kernel, padding, output_padding)
    assert isinstance(transposed, nn.ConvTranspose2d) and isinstance(resize, ResizeConv2d)
    with torch.no_grad():
        grid, smooth = transposed(flat), resize(flat)
    assert grid.shape == smooth.shape == (1, 5, 16, 16)
    assert _interior_spread(grid) > 1e-2
    assert _interior_spread(smooth) < 1e-6


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="resize_conv"):
        upsample2x("pixel_shuffle", 4, 4, 4, 1)


def test_transposed_layer_made_from_a_resize_conv_maps_back_exactly():
    """Nearest x2 + 3x3 conv is a k4 p1 transposed convolution whose per-dimension taps are (W2, W1+W2, W0+W1,
    W0) (even outputs see x[m-1] W0 + x[m] (W1+W2), odd ones x[m] (W0+W1) + x[m+1] W2); the projection recovers
    W, and the two layers agree everywhere, borders included."""
    torch.manual_seed(1)
    resize = ResizeConv2d(3, 4)
    taps = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.float32)  # (k=4, 3)
    transposed = nn.ConvTranspose2d(3, 4, 4, 2, 1)
    with torch.no_grad():
        transposed.weight.copy_(torch.einsum("ka,lb,oiab->iokl", taps, taps, resize.weight))
        transposed.bias.copy_(resize.bias)
    recovered = resize_conv_weight(transposed)
    torch.testing.assert_close(recovered, resize.weight)
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(transposed(x), resize(x))


@pytest.mark.parametrize("kernel,padding,output_padding", TRANSPOSED)
def test_projection_is_the_least_squares_fit(kernel, padding, output_padding):
    """For any transposed weights the projected resize-conv is the closest one: no perturbation of its
    weights brings the outputs on white noise nearer (up to the border, which the fit ignores)."""
    torch.manual_seed(2)
    transposed = nn.ConvTranspose2d(2, 3, kernel, 2, padding, output_padding, bias=False)
    resize = ResizeConv2d(2, 3, bias=False)
    with torch.no_grad():
        resize.weight.copy_(resize_conv_weight(transposed))
    x = torch.randn(4, 2, 48, 48)

    def error(weight):
        with torch.no_grad():
            y = torch.nn.functional.conv2d(torch.nn.functional.interpolate(x, scale_factor=2.0), weight, padding=1)
            return (y - transposed(x))[..., 4:-4, 4:-4].pow(2).mean().item()

    best = error(resize.weight)
    assert best < error(torch.zeros_like(resize.weight))  # it explains part of the transposed layer
    for _ in range(8):
        assert best < error(resize.weight + 0.05 * resize.weight.abs().mean() * torch.randn_like(resize.weight))


def test_only_square_stride_2_layers_are_projected():
    with pytest.raises(ValueError, match="stride-2"):
        resize_conv_weight(nn.ConvTranspose2d(2, 2, 3, 1, 1))
