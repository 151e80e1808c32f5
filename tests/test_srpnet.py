"""SRPNet / PEN-Net generators, the attention transfer module, pyramid loss and the SRPNet discriminators."""

import pytest
import torch
import torch.nn.functional as F

from inpaintlab.errors import InpaintlabError
from inpaintlab.layers.atm import AttentionTransfer
from inpaintlab.losses import GeneratorLoss, pyramid_l1
from inpaintlab.models import create_discriminator, create_model
from inpaintlab.models.discriminators import SRPNetDiscriminator, crop_holes, hole_boxes
from inpaintlab.models.srpnet import ResidualBlock
from inpaintlab.presets import PRESETS
from inpaintlab.types import InpaintOutput


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


# ---------------------------------------------------------------------------------------------- ATM


def _atm_by_loops(shallow, deep, mask_deep, ksize, scale=10.0, cosine=False):
    """Eqs. 2-4 one query/key patch pair at a time (mask already at deep size): PEN-Net's rules, or with
    ``cosine`` the equations as written (both patches normalised, softmax over the valid keys only)."""
    b, _, h, w = deep.shape
    pad = ksize // 2
    deep_p = F.pad(deep, (pad,) * 4)
    mask_p = F.pad(mask_deep, (pad,) * 4)
    shallow_p = F.pad(shallow, (1,) * 4)
    out = torch.zeros(b, shallow.shape[1], 2 * h + 2, 2 * w + 2, dtype=deep.dtype)
    positions = [(r, s) for r in range(h) for s in range(w)]
    for n in range(b):
        patch = [deep_p[n, :, r : r + ksize, s : s + ksize] for r, s in positions]
        hole_in_key = [mask_p[n, :, r : r + ksize, s : s + ksize].sum() > 0 for r, s in positions]
        valid = 1 - torch.stack(hole_in_key).to(deep.dtype)
        for qr, qs in positions:
            query = patch[qr * w + qs]
            scores = torch.stack([(query * key).sum() / max(key.norm().item(), 1e-4) for key in patch])
            if cosine:
                scores = scores / max(query.norm().item(), 1e-4)
                exp = torch.exp(scale * scores) * valid
                weights = exp / exp.sum()
            else:
                weights = (torch.softmax(scores * valid * scale, 0) * valid).clamp_min(1e-8)
            for k, (kr, ks) in enumerate(positions):
                raw = shallow_p[n, :, 2 * kr : 2 * kr + 4, 2 * ks : 2 * ks + 4]
                out[n, :, 2 * qr : 2 * qr + 4, 2 * qs : 2 * qs + 4] += weights[k] * raw
    return out[:, :, 1:-1, 1:-1] / 4


@pytest.mark.parametrize("ksize", [1, 3])
def test_atm_matches_per_patch_computation(ksize):
    g = torch.Generator().manual_seed(ksize)
    deep = torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64)
    shallow = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    mask[0, :, 1:3, 1:3] = 1
    mask[1, :, 0, 2:] = 1
    atm = AttentionTransfer(3, ksize=ksize, fill="all", out_layer="none")
    assert torch.allclose(atm(shallow, deep, mask), _atm_by_loops(shallow, deep, mask, ksize), atol=1e-10)


def test_atm_cosine_match_follows_eqs_2_and_3():
    g = torch.Generator().manual_seed(7)
    deep = torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3, 16).view(1, 1, 4, 4)
    shallow = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    mask[0, :, 0, 0] = 1
    mask[1, :, 0, 2:] = 1
    cosine = AttentionTransfer(3, ksize=3, fill="all", out_layer="none", match="cosine")
    pennet = AttentionTransfer(3, ksize=3, fill="all", out_layer="none")
    expected = _atm_by_loops(shallow, deep, mask, 3, cosine=True)
    assert torch.allclose(cosine(shallow, deep, mask), expected, atol=1e-10)
    assert not torch.allclose(pennet(shallow, deep, mask), expected, atol=1e-3)
    assert torch.equal(cosine(shallow, deep, torch.ones_like(mask)), torch.zeros_like(shallow))  # no valid key
    with pytest.raises(InpaintlabError, match="match must be"):
        AttentionTransfer(3, match="dot")


def test_atm_identity_affinity_copies_the_shallow_map():
    # one-hot deep features: each query matches only itself, so the interior of the shallow map comes back
    deep = torch.eye(16).reshape(1, 16, 4, 4) * 3
    shallow = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    atm = AttentionTransfer(2, ksize=1, softmax_scale=10.0, fill="all", out_layer="none")
    out = atm(shallow, deep, torch.zeros(1, 1, 4, 4))
    assert torch.allclose(out[..., 1:-1, 1:-1], shallow[..., 1:-1, 1:-1], atol=0.05)
    assert torch.allclose(out[..., 0, 0], shallow[..., 0, 0] / 4, atol=0.05)  # PEN-Net's /4 at the corners


def test_atm_hole_fill_replaces_only_hole_cells():
    g = torch.Generator().manual_seed(1)
    deep, shallow = torch.randn(1, 4, 4, 4, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 3:6, 9:12] = 1  # rows 3..5 -> shallow cells 1..2, cols 9..11 -> cells 4..5
    hole = torch.zeros(1, 1, 8, 8)
    hole[..., 1:3, 4:6] = 1
    transferred = AttentionTransfer(4, fill="all", out_layer="none")(shallow, deep, mask)
    filled = AttentionTransfer(4, fill="hole", out_layer="none")(shallow, deep, mask)
    assert torch.equal(filled, shallow * (1 - hole) + transferred * hole)


# ------------------------------------------------------------------------------------------ generators


@pytest.mark.parametrize("name", ["srpnet_tiny", "pennet_tiny"])
def test_pyramid_outputs_shapes_ranges_and_hole_noise(name, two_hole_batch):
    torch.manual_seed(0)
    model = create_model(name).eval()
    image, mask, g = two_hole_batch(height=64, width=128)
    with torch.no_grad():
        out = model(image, mask)
        noisy = model(image + mask * torch.rand(image.shape, generator=g), mask)
    assert out.pred.shape == image.shape and out.stages == ()
    pyramid = out.aux["pyramid"]
    assert [tuple(p.shape) for p in pyramid] == [(2, 3, 64 // 2**k, 128 // 2**k) for k in range(5, 0, -1)]
    for t in (out.pred, *pyramid):
        assert t.min() >= 0 and t.max() <= 1
    for a, b in zip((out.pred, *pyramid), (noisy.pred, *noisy.aux["pyramid"])):
        assert torch.allclose(a, b, atol=1e-6)
    # the output depends on every known pixel and on no hole pixel
    image.requires_grad_(True)
    model(image, mask).pred.sum().backward()
    assert torch.all(image.grad.abs().sum(dim=1, keepdim=True)[mask == 0] > 0)
    assert torch.all(image.grad.abs().sum(dim=1, keepdim=True)[mask == 1] == 0)


def _official_atn(low, high, mask, ksize, fuse_convs):
    """PEN-Net ``AtnConv`` (notes 3.2) re-derived per sample: keys as conv2d filters, conv_transpose2d paste."""
    pad, outs = ksize // 2, []
    small = F.interpolate(mask, size=high.shape[-2:], mode="bilinear", align_corners=True)
    positions = [(r, s) for r in range(high.shape[2]) for s in range(high.shape[3])]
    for b in range(low.shape[0]):
        high_p, mask_p, low_p = F.pad(high[b], (pad,) * 4), F.pad(small[b], (pad,) * 4), F.pad(low[b], (1,) * 4)
        keys = torch.stack([high_p[:, r : r + ksize, s : s + ksize] for r, s in positions])
        valid = torch.stack([mask_p[:, r : r + ksize, s : s + ksize].mean() == 0 for r, s in positions])
        valid = valid.to(low.dtype).view(1, -1, 1, 1)
        keys = keys / keys.flatten(1).norm(dim=1).clamp_min(1e-4).view(-1, 1, 1, 1)
        y = (torch.softmax(F.conv2d(high[b : b + 1], keys, padding=pad) * valid * 10, 1) * valid).clamp_min(1e-8)
        raw = torch.stack([low_p[:, 2 * r : 2 * r + 4, 2 * s : 2 * s + 4] for r, s in positions])
        outs.append(F.conv_transpose2d(y, raw, stride=2, padding=1) / 4)
    y = torch.cat(outs)
    if fuse_convs is None:
        return y
    return torch.cat([F.conv2d(y, c.weight, c.bias, padding=c.padding, dilation=c.dilation).relu() for c in fuse_convs], 1)


def test_pennet_equals_the_official_forward_rederived():
    """notes 3.2: dw_conv01..06, at_conv05 (1x1, no fuse)..at_conv01, up_conv05..01 on bilinear x2, torgb, decoder."""
    torch.manual_seed(0)
    model = create_model("pennet_tiny").eval()
    for p in model.parameters():
        p.data.normal_(0, 0.1)  # sharper than the 0.02 init, so the attention is far from uniform
    g = torch.Generator().manual_seed(5)
    image, mask = torch.rand(2, 3, 128, 128, generator=g), torch.zeros(2, 1, 128, 128)
    mask[0, :, 30:90, 40:100] = 1
    mask[1, :, 5:40, 60:120] = 1
    conv = lambda m, t, **kw: F.conv2d(t, m.weight, m.bias, padding=m.padding, **kw)
    up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True)
    x, xs = torch.cat([(image * 2 - 1) * (1 - mask) + mask, mask], 1), []
    for i, level in enumerate(model.encoder):
        x = conv(level[0][0], x, stride=2)
        xs.append(x.relu() if i == 5 else F.leaky_relu(x, 0.2))
        x = xs[-1]
    for i in range(4, -1, -1):
        fuse = None if i == 4 else [branch[0] for branch in model.atms[i].out.branches]
        xs[i] = _official_atn(xs[i], xs[i + 1], mask, 1 if i == 4 else 3, fuse)
    upx = conv(model.decoder[4][0], up(xs[5])).relu()
    pyramid = [conv(model.to_rgb[4][0], torch.cat([upx, xs[4]], 1)).tanh()]
    for i in range(3, -1, -1):
        upx = conv(model.decoder[i][0], up(torch.cat([upx, xs[i + 1]], 1))).relu()
        pyramid.append(conv(model.to_rgb[i][0], torch.cat([upx, xs[i]], 1)).tanh())
    final = conv(model.final[1], conv(model.final[0][0], up(torch.cat([upx, xs[0]], 1))).relu()).tanh()
    with torch.no_grad():
        out = model(image, mask)
    assert final.std() > 0.05
    assert torch.allclose(out.pred, (final + 1) / 2, atol=1e-5)
    for ours, official in zip(out.aux["pyramid"], pyramid, strict=True):
        assert torch.allclose(ours, (official + 1) / 2, atol=1e-5)


def test_every_parameter_trains_through_pred_and_pyramid(two_hole_batch):
    torch.manual_seed(0)
    model = create_model("srpnet_tiny")
    # the deepest map is 2x2 (at 1x1, instance norm zeroes a block)
    image, mask, _ = two_hole_batch(height=128, width=128)
    out = model(image, mask)
    (F.l1_loss(out.pred, image) + pyramid_l1(out.aux["pyramid"], image)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_residual_block_is_edgeconnect_block_with_instance_norm():
    torch.manual_seed(0)
    block = ResidualBlock(6, dilation=2, padding="reflect")
    x = torch.randn(2, 6, 9, 9)
    y = F.instance_norm(F.conv2d(F.pad(x, (2,) * 4, mode="reflect"), block.conv1.weight, dilation=2)).relu()
    expected = x + F.instance_norm(F.conv2d(F.pad(y, (1,) * 4, mode="reflect"), block.conv2.weight))
    assert torch.allclose(block(x), expected, atol=1e-5)


def test_parameter_counts_equal_hand_counts_from_table_a1():
    widths = [32, 64, 128, 256, 512, 512]
    encoder = sum(_conv(cin, cout, 3) for cin, cout in zip([4, *widths[:-1]], widths))
    residual = sum(2 * _conv(c, c, 3, bias=False) for c in widths)
    atm_conv = sum(_conv(c, c, 1) for c in (512, 256, 128, 64, 32))
    deconv = _conv(512, 512, 3) + _conv(1024, 256, 3) + _conv(512, 128, 3) + _conv(256, 64, 3) + _conv(128, 32, 3)
    outputs = sum(_conv(c, 3, 1) for c in (1024, 512, 256, 128, 64)) + _conv(64, 32, 3) + _conv(32, 3, 3)
    pennet_fuse = sum(4 * _conv(c, c // 4, 3) for c in (256, 128, 64, 32))  # notes 3.2, no fuse at ATM 5
    torch.manual_seed(0)
    assert _count(create_model("srpnet")) == encoder + residual + atm_conv + deconv + outputs == 20_801_778
    assert _count(create_model("pennet")) == encoder + pennet_fuse + deconv + outputs == 10_231_538
    assert _count(create_model("srpnet", residual_blocks=False)) == 20_801_778 - residual
    table_a2 = sum(_conv(cin, cout, 5, bias=False) for cin, cout in [(3, 64), (64, 128), (128, 256), (256, 512)])
    table_a2 += _conv(512, 1, 5)
    assert _count(create_discriminator("srpnet_global")) == table_a2 == 4_318_401
    assert _count(create_discriminator("srpnet")) == 2 * table_a2


def test_generator_errors(two_hole_batch):
    model = create_model("srpnet_tiny")
    image, mask, _ = two_hole_batch(height=96, width=64)
    with pytest.raises(InpaintlabError, match="multiples of 64"):
        model(image, mask)
    with pytest.raises(InpaintlabError, match="no option 'depth'"):
        create_model("pennet_tiny", depth=3)


# ------------------------------------------------------------------------------------------ pyramid loss


def test_pyramid_l1_against_manual_computation():
    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 64, 64, generator=g)
    outs = (torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 22, 22, generator=g))
    # align_corners=True from 64 to 8 / 22 samples every 9th / 3rd pixel exactly
    manual = (outs[0] - image[..., ::9, ::9]).abs().mean() + (outs[1] - image[..., ::3, ::3]).abs().mean()
    assert torch.allclose(pyramid_l1(outs, image), manual, atol=1e-6)
    small = torch.rand(2, 3, 16, 16, generator=g)
    blocks = image.reshape(2, 3, 16, 4, 16, 4).mean(dim=(3, 5))
    assert torch.allclose(pyramid_l1((small,), image, mode="area"), (small - blocks).abs().mean(), atol=1e-6)
    with pytest.raises(InpaintlabError):
        pyramid_l1((small,), image, mode="nearest")


@pytest.mark.parametrize("preset", ["srpnet_places2", "pennet_places2"])
def test_preset_generator_loss_equals_pennet_trainer_objective(preset):
    """PEN-Net ``core/trainer.py`` (notes 3.2), in its [-1,1] range: 0.1 hinge(D(comp)) + 6 hole/mean(m) +
    valid/mean(1-m) + 0.5 pyramid L1. Equal hole areas, so its batch normalisation equals our per-image one."""
    g = torch.Generator().manual_seed(8)
    image, pred = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    pyramid = (torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 16, 16, generator=g))
    mask = torch.zeros(2, 1, 64, 64)
    mask[0, :, 5:25, 10:30] = 1
    mask[1, :, 30:50, 40:60] = 1
    torch.manual_seed(0)
    disc = create_discriminator("srpnet_tiny" if preset.startswith("srpnet") else "pennet", ndf=8)
    loss = GeneratorLoss(PRESETS[preset].loss, disc)
    total, _ = loss(InpaintOutput(pred=pred, aux={"pyramid": pyramid}), image, mask)

    gt, out = image * 2 - 1, pred * 2 - 1
    hole = F.l1_loss(out * mask, gt * mask) / mask.mean()
    valid = F.l1_loss(out * (1 - mask), gt * (1 - mask)) / (1 - mask).mean()
    pyr = sum(F.l1_loss(p * 2 - 1, F.interpolate(gt, p.shape[-2:], mode="bilinear", align_corners=True)) for p in pyramid)
    heads = disc(pred * mask + image * (1 - mask), mask)
    adv = sum(-h.mean() for h in (heads if isinstance(heads, list) else [heads])) / (2 if isinstance(heads, list) else 1)
    assert torch.allclose(total, 0.1 * adv + 6 * hole + valid + 0.5 * pyr, atol=1e-5)


# ------------------------------------------------------------------------------------------ discriminators


def test_hole_boxes_for_square_irregular_and_empty_masks():
    mask = torch.zeros(3, 1, 32, 48)
    mask[0, :, 8:24, 16:32] = 1
    mask[1, :, 3, 40] = 1
    mask[1, :, 20:23, 5:9] = 1
    mask[1, :, 27, 11] = 1
    assert hole_boxes(mask) == [(8, 24, 16, 32), (3, 28, 5, 41), (0, 32, 0, 48)]


def test_local_crop_is_the_hole_box_resized():
    g = torch.Generator().manual_seed(4)
    image = torch.rand(2, 3, 64, 64, generator=g)
    mask = torch.zeros(2, 1, 64, 64)
    mask[0, :, 10:26, 30:46] = 1  # 16x16 box == local size: exact crop
    mask[1, :, 2:34, 20:52] = 1
    mask[1, :, 10:20, 25:30] = 0  # irregular: 32x32 box -> bilinear /2 = mean of 2x2 blocks
    crops = crop_holes(image, mask, 16)
    assert torch.equal(crops[0], image[0, :, 10:26, 30:46])
    assert torch.allclose(crops[1], F.avg_pool2d(image[1:2, :, 2:34, 20:52], 2)[0], atol=1e-6)

    torch.manual_seed(0)
    disc = create_discriminator("srpnet_tiny").eval()  # local_size 64
    boxes = [(10, 26, 30, 46), (2, 34, 20, 52)]
    manual = torch.cat(
        [F.interpolate(image[i : i + 1, :, t:b, l:r], (64, 64), mode="bilinear") for i, (t, b, l, r) in enumerate(boxes)]
    )
    with torch.no_grad():
        global_logits, local_logits = disc(image, mask)
        assert torch.allclose(local_logits, disc.local_d.net(manual), atol=1e-6)
        assert torch.allclose(global_logits, disc.global_d(image), atol=1e-6)
    # gradients reach exactly the pixels of each hole box
    image.requires_grad_(True)
    disc(image, mask)[1].sum().backward()
    touched = image.grad.abs().sum(dim=1) > 0
    in_box = torch.zeros_like(touched)
    in_box[0, 10:26, 30:46] = True
    in_box[1, 2:34, 20:52] = True
    assert torch.equal(touched, in_box)
    with pytest.raises(InpaintlabError, match="needs the hole mask"):
        disc(image)


def test_table_a2_discriminator_layout():
    torch.manual_seed(0)
    disc = SRPNetDiscriminator()
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (3, 64, (5, 5), (2, 2), (1, 1)),
        (64, 128, (5, 5), (2, 2), (1, 1)),
        (128, 256, (5, 5), (2, 2), (1, 1)),
        (256, 512, (5, 5), (2, 2), (1, 1)),
        (512, 1, (5, 5), (2, 2), (1, 1)),
    ]
    assert sum(hasattr(c, "parametrizations") for c in convs) == 4 and not hasattr(convs[-1], "parametrizations")
    with torch.no_grad():
        assert disc(torch.rand(1, 3, 256, 256)).shape == (1, 1, 7, 7)
        assert disc(torch.rand(1, 3, 128, 128)).shape == (1, 1, 3, 3)
    plain = SRPNetDiscriminator(use_spectral_norm=False, last_lrelu=True)
    assert _count(plain) == _count(disc) + 64 + 128 + 256 + 512  # biases come back without spectral norm
    assert not any(hasattr(c, "parametrizations") for c in plain.modules())
    assert isinstance(plain.classifier[-1], torch.nn.LeakyReLU)
