"""MSA-Net: architecture and parameter counts of the official code, an independent re-computation of the
official forward (NVIDIA PConv with all-ones mask kernels, per-sample attention loop), attention maps,
discriminator and the ``attention`` CLI."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from inpaintlab import InpaintlabError, create_discriminator, create_model
from inpaintlab.checkpoint import save_checkpoint
from inpaintlab.cli import main
from inpaintlab.layers.pixel_attention import PixelAttentionBlock, PixelwiseAttention
from inpaintlab.models.msanet import attention_flow, attention_offsets, flow_to_color


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _image_and_mask(size, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=g)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4 : 3 * size // 4, size // 3 : 5 * size // 6] = 1
    mask[..., 2 : size // 8, 2 : size // 3] = 1
    return image, mask


# ------------------------------------------------------------------ independent reference (official code)


def _nvidia_pconv(conv, x, valid):
    """NVIDIA multi-channel PartialConv2d: all-ones [out,in,k,k] mask kernel, valid = 1 - hole."""
    ones = torch.ones(conv.out_channels, conv.in_channels, *conv.kernel_size, dtype=x.dtype)
    update = F.conv2d(valid, ones, None, conv.stride, conv.padding)
    ratio = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1] / (update + 1e-8)
    update = update.clamp(0, 1)
    ratio = ratio * update
    raw = F.conv2d(x * valid, conv.weight, conv.bias, conv.stride, conv.padding)
    bias = conv.bias.view(1, -1, 1, 1)
    return ((raw - bias) * ratio + bias) * update, update


def _official_attention(features, valid_full, propagate=3, scale=1.0, normalize_queries=False):
    """ContextualAttentionModule(patch 1, propagate 3): one sample at a time, scores as a conv."""
    b, c, h, w = features.shape
    valid = F.interpolate(valid_full, size=(h, w))
    background = features * valid
    outputs, scores_all = [], []
    for i in range(b):
        kernels = background[i].reshape(c, h * w).t().reshape(h * w, c, 1, 1) + 1e-7
        kernels = kernels / torch.sum(kernels**2, [1, 2, 3], keepdim=True) ** 0.5
        query = features[i : i + 1]
        if normalize_queries:
            query = query / query.norm(dim=1, keepdim=True)
        scores = F.conv2d(query, kernels) * scale
        if propagate != 1:
            ones = torch.ones(h * w, 1, propagate, propagate, dtype=features.dtype)
            scores = F.conv2d(scores, ones, padding=propagate // 2, groups=h * w)
        attention = F.softmax(scores, dim=1)  # (1, HW keys, H, W queries)
        recovered = F.conv_transpose2d(attention, kernels) * (1 - valid[i : i + 1])
        outputs.append(recovered + features[i : i + 1] * valid[i : i + 1])
        scores_all.append(attention[0].reshape(h * w, h * w).t())  # (query, key)
    return torch.cat(outputs), torch.stack(scores_all)


def _official_block(block, features, valid_full):
    merged = torch.cat([features, _official_attention(features, valid_full)[0]], dim=1)
    fc1, fc2 = block.se.excite[0], block.se.excite[2]
    weights = torch.sigmoid(fc2(torch.relu(fc1(merged.mean(dim=(2, 3))))))
    return block.combiner(merged * weights[:, :, None, None])


def _reference_forward(model, image, mask):
    """The official ``PConvUNet.forward`` re-computed from the model's weights (raw, unclamped)."""
    valid = (1 - mask).expand(-1, 3, -1, -1)
    h, h_valid = image * valid, valid
    skips = [(h, h_valid)]
    for level, block in enumerate(model.encoders, start=1):
        h, h_valid = _nvidia_pconv(block.conv, h, h_valid)
        if level > 1:
            h = block.bn(h)
        h = torch.relu(h)
        skips.append((h, h_valid))
    for level in range(model.layers, 0, -1):
        block = model.decoders[level - 1]
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h_valid = F.interpolate(h_valid, scale_factor=2, mode="nearest")
        h = torch.cat([h, skips[level - 1][0]], 1)
        h_valid = torch.cat([h_valid, skips[level - 1][1]], 1)
        h, h_valid = _nvidia_pconv(block.conv, h, h_valid)
        if level > 1:
            h = F.leaky_relu(block.bn(h), 0.2)
        if level in (4, 3):
            h = _official_block(model.attention[f"decode_{level}"], h, 1 - mask)
    return h


def _randomise_batchnorm(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


# ------------------------------------------------------------------------------------------------ tests


def test_parameter_counts_equal_the_official_code():
    msanet, pconv = create_model("msanet"), create_model("pconv_unet")
    assert _count(msanet) == 33_686_356
    assert _count(pconv) == 32_865_236
    attention = sum(_count(b) for b in msanet.modules() if isinstance(b, PixelAttentionBlock))
    assert attention == 821_120 == _count(msanet) - _count(pconv)
    assert _count(create_discriminator("msanet")) == 2_763_776
    assert msanet.size_multiple == 256


def test_layout_follows_tables_1_and_2():
    model = create_model("msanet").eval()
    assert [b.conv.kernel_size[0] for b in model.encoders] == [7, 5, 5, 3, 3, 3, 3, 3]
    assert [b.conv.out_channels for b in model.encoders] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert [b.conv.in_channels for b in model.decoders] == [67, 192, 384, 768, 1024, 1024, 1024, 1024]
    assert isinstance(model.encoders[0].bn, nn.Identity) and isinstance(model.decoders[0].bn, nn.Identity)
    assert isinstance(model.encoders[0].act, nn.ReLU) and isinstance(model.decoders[0].act, nn.Identity)
    assert all(isinstance(b.act, nn.LeakyReLU) and b.act.negative_slope == 0.2 for b in model.decoders[1:])
    shapes = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out, name=name: shapes.__setitem__(name, tuple(args[0].shape)))
        for name, m in model.attention.items()
    ]
    enc_shapes = []
    hooks += [b.register_forward_hook(lambda mod, args, out: enc_shapes.append(tuple(out[0].shape[1:]))) for b in model.encoders]
    with torch.no_grad():
        model(*_image_and_mask(256))
    for h in hooks:
        h.remove()
    assert [s[1:] for s in enc_shapes] == [(128, 128), (64, 64), (32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert shapes == {"decode_4": (1, 256, 32, 32), "decode_3": (1, 128, 64, 64)}


def test_forward_matches_an_independent_recomputation_of_the_official_code():
    torch.manual_seed(0)
    model = create_model("msanet_tiny").double().eval()
    _randomise_batchnorm(model, seed=1)
    image, mask = _image_and_mask(64, seed=2)
    image, mask = image.double(), mask.double()
    raw = {}
    model.decoders[0].register_forward_hook(lambda mod, args, out: raw.update(out=out[0]))
    with torch.no_grad():
        pred = model(image, mask).pred
        expected = _reference_forward(model, image, mask)
    assert torch.allclose(raw["out"], expected, atol=1e-9, rtol=1e-7)
    assert torch.allclose(pred, expected.clamp(0, 1), atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("options", [{}, {"normalize_queries": True, "softmax_scale": 10.0}, {"propagate_size": 1}])
def test_pixelwise_attention_matches_the_official_loop(options):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 8, 12, 12, dtype=torch.float64, generator=g)
    hole = torch.zeros(2, 1, 48, 48, dtype=torch.float64)
    hole[0, :, 8:30, 10:40] = 1
    hole[1, :, 20:44, 0:20] = 1
    attention = PixelwiseAttention(**options)
    out = attention(features, hole)
    expected, probs = _official_attention(
        features,
        1 - hole,
        options.get("propagate_size", 3),
        options.get("softmax_scale", 1.0),
        options.get("normalize_queries", False),
    )
    assert torch.allclose(out, expected, atol=1e-10)
    assert torch.allclose(attention.probabilities(features, hole), probs, atol=1e-12)
    known = F.interpolate(hole, size=(12, 12)) == 0
    assert torch.equal(out[known.expand_as(out)], features[known.expand_as(out)])


def test_straight_through_clamp_keeps_the_linear_gradient():
    torch.manual_seed(0)
    image, mask = _image_and_mask(64)
    grads = {}
    for straight in (True, False):
        model = create_model("msanet_tiny", straight_through_clamp=straight).eval()
        nn.init.constant_(model.decoders[0].conv.bias, 3.0)  # raw output far above 1
        pred = model(image, mask).pred
        assert torch.equal(pred, torch.ones_like(pred))
        pred.sum().backward()
        grads[straight] = model.decoders[0].conv.bias.grad.clone()
    assert torch.allclose(grads[True], torch.full((3,), 64.0 * 64.0))  # d(sum of the linear output)/d bias
    assert torch.equal(grads[False], torch.zeros(3))


def test_every_parameter_trains_and_bf16_autocast_stays_close():
    torch.manual_seed(0)
    model = create_model("msanet_tiny").train()
    (image, mask), (other, _) = _image_and_mask(64), _image_and_mask(64, seed=1)
    # two different images: train-mode BN over identical 1x1 bottleneck features would be degenerate
    model(torch.cat([image, other]), mask.expand(2, -1, -1, -1)).pred.mean().backward()
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        reference = model(image, mask).pred
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(image, mask).pred
    assert torch.isfinite(low).all() and (low.float() - reference).abs().max() < 0.05


def test_freeze_encoder_bn_keeps_encoder_statistics():
    torch.manual_seed(0)
    model = create_model("msanet_tiny", freeze_encoder_bn=True).train()
    before = [b.bn.running_mean.clone() for b in model.encoders[1:]]
    decoder_before = model.decoders[1].bn.running_mean.clone()
    model(*_image_and_mask(64))
    assert all(not b.bn.training for b in model.encoders[1:]) and model.decoders[1].bn.training
    assert all(torch.equal(a, b.bn.running_mean) for a, b in zip(before, model.encoders[1:]))
    assert not torch.equal(decoder_before, model.decoders[1].bn.running_mean)


def test_rejects_sizes_that_are_not_multiples():
    model = create_model("pconv_unet_tiny")
    assert model.size_multiple == 64 and not any(isinstance(m, PixelAttentionBlock) for m in model.modules())
    with pytest.raises(InpaintlabError, match="divisible by 64"):
        model(torch.rand(1, 3, 96, 64), torch.zeros(1, 1, 96, 64))


def test_discriminator_table_3():
    torch.manual_seed(0)
    d = create_discriminator("msanet")
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(4, 4)] * 5 and [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.bias is None and hasattr(c, "parametrizations") for c in convs)
    for _ in range(5):  # one power iteration per training-mode forward
        d(torch.rand(1, 3, 32, 32))
    d.eval()
    image = torch.rand(1, 3, 256, 256)
    probs = d(image)
    assert probs.shape == (1, 1, 30, 30) and (probs > 0).all() and (probs < 1).all()

    def largest_singular_value(weight):
        w = weight.detach().double().reshape(weight.shape[0], -1)
        return torch.linalg.eigvalsh(w @ w.T).max().sqrt().item()

    for c in convs:
        original = c.parametrizations.weight.original
        assert abs(original.std().item() - 0.02) < 0.004  # official N(0, 0.02) init of the raw weights
        scale = (c.weight / original).detach()  # spectral norm divides the raw weight by its sigma
        assert torch.allclose(scale, torch.full_like(scale, 1 / largest_singular_value(original)), rtol=0.05)
        assert abs(largest_singular_value(c.weight) - 1) < 0.05
    logits = create_discriminator("msanet", use_sigmoid=False)
    logits.load_state_dict(d.state_dict())
    assert torch.allclose(torch.sigmoid(logits.eval()(image)), probs, atol=1e-6)


def test_flow_colors_follow_the_paper_and_the_middlebury_wheel():
    offsets = torch.tensor([[[0.0, 0.0], [0.7, 0.7], [-0.7, -0.7], [1.0, 0.0], [-1.0, 0.0], [0.5, 0.0]]])
    colors = flow_to_color(offsets)[0].astype(int)
    assert colors[0].tolist() == [255, 255, 255]  # no offset: white
    r, g, b = colors[1]
    assert r > 200 and b > 200 and g < 60  # bottom-right: pink (Fig. 8)
    r, g, b = colors[2]
    assert g > 200 and r < 100 and b < 60  # top-left: green (Fig. 8)
    # Middlebury wheel (55 colours, RY15 YG6 GC4 CB11 BM13 MR6) at (u,v) = (dy,-dx): straight down is the
    # last MR entry (255, 0, 255 - floor(255*5/6)), straight up the third CB entry (0, 255 - floor(255*2/11), 255).
    assert colors[3].tolist() == [255, 0, 43]
    assert colors[4].tolist() == [0, 209, 255]
    assert colors[5].tolist() == [255, 128, 149]  # half saturation: 1 - 0.5 * (1 - c)


def test_attention_offsets_match_the_official_scores():
    torch.manual_seed(0)
    model = create_model("msanet_tiny").eval()
    image, mask = _image_and_mask(64, seed=3)
    captured = {}
    for name, block in model.attention.items():
        block.register_forward_hook(lambda mod, args, out, name=name: captured.__setitem__(name, args[0]))
    results = {reduce: attention_offsets(model, image, mask, reduce) for reduce in ("argmax", "expectation")}
    assert set(results["argmax"]) == {"8x8", "16x16"}
    for name, level in (("decode_4", "8x8"), ("decode_3", "16x16")):
        features = captured[name]
        h, w = features.shape[2:]
        probs = _official_attention(features.double(), 1 - mask.double())[1][0]
        hole = F.interpolate(mask, size=(h, w))[0, 0].bool()
        for reduce, offsets_of in results.items():
            offsets, small_hole = offsets_of[level]
            assert torch.equal(small_hole, hole) and hole.any()
            for y, x in hole.nonzero().tolist():
                row = probs[y * w + x]
                if reduce == "argmax":
                    key = row.argmax().item()
                    expected = torch.tensor([key // w - y, key % w - x], dtype=torch.float64)
                else:
                    ky = (row.reshape(h, w).sum(1) * torch.arange(h)).sum()
                    kx = (row.reshape(h, w).sum(0) * torch.arange(w)).sum()
                    expected = torch.stack([ky - y, kx - x])
                assert torch.allclose(offsets[y, x], expected, atol=1e-6)
            assert (offsets[~hole] == 0).all()
    model.train()  # visualising runs in eval mode and leaves the model and its statistics as they were
    running_mean = model.decoders[1].bn.running_mean.clone()
    colored = attention_flow(model, image, mask)
    assert model.training and torch.equal(running_mean, model.decoders[1].bn.running_mean)
    assert colored["16x16"].shape == (16, 16, 3) and colored["16x16"].dtype == np.uint8
    known = ~F.interpolate(mask, size=(16, 16))[0, 0].bool()
    assert (colored["16x16"][known.numpy()] == 255).all()
    offsets = results["argmax"]["16x16"][0]
    assert np.array_equal(colored["16x16"], flow_to_color(offsets / 16))


def test_attention_cli_writes_the_figure(tmp_path, capsys):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((70, 90, 3)) * 255).astype(np.uint8)).save(tmp_path / "img.png")
    hole = np.zeros((70, 90), np.uint8)
    hole[20:50, 30:70] = 255
    Image.fromarray(hole).save(tmp_path / "mask.png")
    torch.manual_seed(0)
    model = create_model("msanet_tiny")
    _randomise_batchnorm(model, seed=4)
    state = {f"generator.{k}": v for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path / "m.safetensors", state, {"model": {"name": "msanet_tiny", "kwargs": {}}})
    args = [str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "--size", "64"]
    checkpoint = str(tmp_path / "m.safetensors")
    assert main(["attention", "--checkpoint", checkpoint, *args, "-o", str(tmp_path / "a.png")]) == 0
    panel = np.asarray(Image.open(tmp_path / "a.png"))
    assert panel.shape == (64, 64 * 5, 3)
    # the maps in the figure are those of the checkpoint's model on the resized inputs
    image = torch.from_numpy(np.array(Image.open(tmp_path / "img.png").resize((64, 64), Image.Resampling.BICUBIC)))
    mask = torch.from_numpy(np.array(Image.fromarray(hole).resize((64, 64), Image.Resampling.NEAREST)) > 127)
    flows = attention_flow(model.eval(), image.permute(2, 0, 1)[None].float() / 255, mask[None, None].float())
    assert np.array_equal(panel[::8, 128 + 4 : 192 : 8], flows["8x8"])
    assert np.array_equal(panel[::4, 192 + 2 : 256 : 4], flows["16x16"])
    assert main(["attention", "--model", "pconv_unet_tiny", *args, "-o", str(tmp_path / "b.png")]) == 2
    assert "no pixelwise attention" in capsys.readouterr().err
