"""LGNet generator and SN patch discriminator: sizes, wiring, pipeline semantics, ablations, errors."""

import pytest
import torch
import torch.nn.functional as F

from inpaintlab.errors import InpaintlabError
from inpaintlab.layers.attention import self_attention_direct
from inpaintlab.layers.upsample import ResizeConv2d, resize_conv_weight
from inpaintlab.models import create_discriminator, create_model
from inpaintlab.models.lgnet import ABLATIONS, LocalRefineNet, UNetGenerator


def _count(module):
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------- sizes (official numbers)


@pytest.mark.parametrize(
    "name, total, per_net",
    [
        ("lgnet", 115_002_185, {"C": 54_414_979, "L": 5_483_203, "G_att": 55_104_003}),
        ("lgnet_light", 67_095_337, {"C": 30_612_195, "L": 5_483_203, "G_att": 30_999_939}),
        ("lgnet_share", 60_587_206, {"L": 5_483_203, "G_att": 55_104_003}),
    ],
)
def test_parameter_counts_match_official_code(name, total, per_net):
    torch.manual_seed(0)
    model = create_model(name)
    assert _count(model) == total
    assert {k: _count(v) for k, v in model.nets.items()} == per_net
    assert model.size_multiple == 256
    if name == "lgnet":  # pix2pix init: conv N(0, 0.02), BN weight N(1, 0.02), every bias 0
        big = model.nets["C"].encoder[4][1].weight  # 512x512x4x4 conv
        assert abs(big.std().item() - 0.02) < 2e-4 and abs(big.mean().item()) < 2e-4
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        bn_w = torch.cat([m.weight.detach() for m in bns])
        assert abs(bn_w.mean().item() - 1) < 2e-3 and abs(bn_w.std().item() - 0.02) < 2e-3
        biases = [m.bias for m in model.modules() if getattr(m, "bias", None) is not None]
        assert all(torch.count_nonzero(b) == 0 for b in biases)


def test_sn_discriminator_size_and_output_shape():
    torch.manual_seed(0)
    disc = create_discriminator("lgnet")
    assert _count(disc) == 4_318_401
    sn_convs = [m for m in disc.modules() if hasattr(m, "parametrizations")]
    assert len(sn_convs) == 4 and not hasattr(disc.classifier, "parametrizations")
    with torch.no_grad():
        logits = disc.eval()(torch.rand(1, 3, 256, 256))
    assert logits.shape == (1, 1, 27, 27)
    for conv in sn_convs:  # spectral norm: the effective weight has largest singular value ~1
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert abs(sigma.item() - 1) < 0.05


def test_tiny_discriminator_output_shape_follows_conv_arithmetic():
    disc = create_discriminator("lgnet_tiny")
    size = 64
    for _ in range(3):  # three stride-2 k5 p1 convs, then two stride-1 k5 p1 convs
        size = (size + 2 - 5) // 2 + 1
    size = size - 2 - 2
    with torch.no_grad():
        assert disc(torch.rand(2, 3, 64, 64)).shape == (2, 1, size, size) == (2, 1, 3, 3)


# ---------------------------------------------------------------------------------- U-Net wiring vs pix2pix


def _reference_unet(net: UNetGenerator, x, attention_levels=()):
    """Recursive pix2pix ``UnetSkipConnectionBlock`` maths (in-place LeakyReLU quirk included), functional."""
    convs = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    enc_bns = [m for m in net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    ups = [m for m in net.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)][::-1]  # level 0 first
    dec_bns = [m for m in net.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)][::-1]  # levels 1..n-1
    n = len(convs)

    def bn(m, t):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    def up(i, t):
        t = F.conv_transpose2d(F.relu(t), ups[i].weight, ups[i].bias, stride=2, padding=1)
        return torch.tanh(t) if i == 0 else bn(dec_bns[i - 1], t)

    def level(i, t):  # t: input of level i (image for i=0)
        if i == 0:
            return up(0, level(1, F.conv2d(t, convs[0].weight, stride=2, padding=1)))
        h = F.conv2d(F.leaky_relu(t, 0.2), convs[i].weight, stride=2, padding=1)
        if i < n - 1:
            h = level(i + 1, bn(enc_bns[i - 1], h))
        u = up(i, h)
        if i in attention_levels:
            att = net.attention[str(i)]
            u = att.combiner(torch.cat([self_attention_direct(u), u], 1))
        return torch.cat([F.leaky_relu(t, 0.2), u], 1)  # pix2pix's skip holds the in-place LeakyReLU of t

    return level(0, x)


@pytest.mark.parametrize("levels", [(), (4, 3, 2)])
def test_unet_matches_recursive_pix2pix_reference(levels):
    torch.manual_seed(0)
    net = UNetGenerator(4, 3, ngf=4, num_downs=6, attention_levels=levels).eval()
    for m in net.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), _reference_unet(net, x, levels), rtol=0, atol=1e-5)
    combiners = set(net.attention.modules())
    convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    biased = [m for m in convs if m.bias is not None and m not in combiners]
    assert biased == [net.decoder[-1][1]]  # only the outermost up-conv (no norm follows it)


def test_local_net_is_local():
    """Output pixel 80 (of 160) of Net_L depends on input rows/cols 38..122 exactly.

    Interval arithmetic backwards: Conv7 (p3) -> 77..83; ConvT k3 s2 p1 (in = (out+1-k)/2) -> 38..42;
    ConvT -> 19..21; 8 residual 3x3 convs -> 11..29; Conv k3 s2 p1 (in = 2*out-1+k) -> 21..59 -> 41..119;
    Conv7 -> 38..122: an 85-pixel window. (The paper quotes 109x109; the official layout gives at most 89.)
    """
    torch.manual_seed(0)
    net = LocalRefineNet(4, 3, ngf=4).eval()
    x = torch.rand(1, 4, 160, 160, generator=torch.Generator().manual_seed(0), requires_grad=True)
    net(x)[0, :, 80, 80].sum().backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (38, 122, 38, 122)


# ------------------------------------------------------------------------------------------ pipeline semantics


@pytest.mark.parametrize("stages", list(ABLATIONS))
def test_ablation_variants_stage_counts_shapes_ranges(stages, two_hole_batch):
    torch.manual_seed(0)
    model = create_model("lgnet_tiny", stages=stages).eval()
    image, mask, _ = two_hole_batch()
    with torch.no_grad():
        out = model(image, mask)
    assert len(out.stages) == len(stages.split("+")) - 1
    assert list(model.nets) == list(ABLATIONS[stages])
    for t in out.outputs:
        assert t.shape == image.shape and torch.isfinite(t).all()
        assert t.min() >= 0 and t.max() <= 1
    if "G" in model.nets:
        assert len(model.nets["G"].attention) == 0
    if "G_att" in model.nets:
        assert sorted(model.nets["G_att"].attention) == ["2", "3", "4"]


@pytest.mark.parametrize("share", [False, True])
def test_hole_content_never_matters(share, two_hole_batch):
    torch.manual_seed(0)
    model = create_model("lgnet_tiny", share_weights=share).eval()
    image, mask, g = two_hole_batch()
    noisy = image + mask * (torch.rand(image.shape, generator=g) * 5 - 2)
    with torch.no_grad():
        a, b = model(image, mask), model(noisy, mask)
    for x, y in zip(a.outputs, b.outputs):
        assert torch.equal(x, y)


def test_each_stage_sees_known_pixels_composited_with_previous_raw_output(two_hole_batch):
    torch.manual_seed(0)
    model = create_model("lgnet_tiny").eval()
    image, mask, _ = two_hole_batch()
    seen = {}
    hooks = [net.register_forward_hook(lambda mod, args, out, k=k: seen.update({k: args[0]})) for k, net in model.nets.items()]
    with torch.no_grad():
        out = model(image, mask)
    for h in hooks:
        h.remove()
    known = image * 2 - 1
    expected_inputs = {
        "C": known * (1 - mask) + mask,  # holes filled with +1 (white)
        "L": known * (1 - mask) + (2 * out.stages[0] - 1) * mask,
        "G_att": known * (1 - mask) + (2 * out.stages[1] - 1) * mask,
    }
    for name, expected in expected_inputs.items():
        torch.testing.assert_close(seen[name][:, :3], expected, rtol=0, atol=1e-6)
        assert torch.equal(seen[name][:, 3:], mask)
    # stage outputs are returned raw: outside the hole they are not the input image
    assert (out.stages[0] - image).abs().mul(1 - mask).max() > 1e-2


def test_share_runs_global_unet_without_attention_as_coarse_stage(two_hole_batch):
    torch.manual_seed(0)
    shared = create_model("lgnet_tiny", share_weights=True).eval()
    full = create_model("lgnet_tiny")
    assert _count(shared) == _count(full) - _count(full.nets["C"])
    assert "C" not in shared.nets and "C" not in shared.state_dict().keys()
    image, mask, _ = two_hole_batch()
    with torch.no_grad():
        out = shared(image, mask)
        first_input = torch.cat([(image * 2 - 1) * (1 - mask) + mask, mask], 1)
        coarse = shared.nets["G_att"](first_input, use_attention=False)
        with_attention = shared.nets["G_att"](first_input)
    torch.testing.assert_close(out.stages[0], (coarse + 1) / 2)
    assert (coarse - with_attention).abs().max() > 1e-5  # the attention modules are really skipped


def test_fast_and_direct_attention_give_the_same_model_output(two_hole_batch):
    torch.manual_seed(0)
    fast = create_model("lgnet_tiny", use_fast_attention=True).eval()
    direct = create_model("lgnet_tiny", use_fast_attention=False).eval()
    direct.load_state_dict(fast.state_dict())
    image, mask, _ = two_hole_batch()
    with torch.no_grad():
        torch.testing.assert_close(fast(image, mask).pred, direct(image, mask).pred, rtol=0, atol=1e-5)


def test_channels_last_is_only_a_layout(two_hole_batch):
    torch.manual_seed(0)
    cl = create_model("lgnet_tiny").eval()
    plain = create_model("lgnet_tiny", channels_last=False).eval()
    plain.load_state_dict(cl.state_dict())
    conv_weight = cl.nets["C"].encoder[1][1].weight
    assert conv_weight.is_contiguous(memory_format=torch.channels_last) and not conv_weight.is_contiguous()
    assert plain.nets["C"].encoder[1][1].weight.is_contiguous()
    image, mask, _ = two_hole_batch()
    with torch.no_grad():
        torch.testing.assert_close(cl(image, mask).pred, plain(image, mask).pred, rtol=0, atol=1e-5)


def test_eval_uses_running_statistics(two_hole_batch):
    torch.manual_seed(0)
    model = create_model("lgnet_tiny")
    image, mask, _ = two_hole_batch(batch=3)
    with torch.no_grad():
        train_pred = model.train()(image, mask).pred  # updates the running statistics
        model.eval()
        batch_pred = model(image, mask).pred
        single_pred = model(image[:1], mask[:1]).pred
    torch.testing.assert_close(batch_pred[:1], single_pred, rtol=0, atol=1e-5)  # no batch coupling in eval
    assert not torch.allclose(train_pred, batch_pred, atol=1e-3)


def test_backward_reaches_every_parameter(two_hole_batch):
    torch.manual_seed(0)
    model = create_model("lgnet_tiny")
    image, mask, _ = two_hole_batch()
    out = model(image, mask)
    sum(t.mean() for t in out.outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


# ------------------------------------------------------------------------- resize-conv upsampling (named variant)


def test_resize_conv_variant_replaces_every_transposed_convolution(two_hole_batch):
    """``upsample="resize_conv"``: every transposed convolution (U-Nets and local net) becomes a resize-conv
    (the layer's own grid test: tests/test_upsample.py) and the output contract holds."""
    torch.manual_seed(0)
    model = create_model("lgnet_tiny", upsample="resize_conv").eval()
    transposed = create_model("lgnet_tiny")
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())
    count = sum(isinstance(m, ResizeConv2d) for m in model.modules())
    assert count == sum(isinstance(m, torch.nn.ConvTranspose2d) for m in transposed.modules()) > 0
    image, mask, _ = two_hole_batch()
    out = model(image, mask)
    assert out.pred.shape == image.shape and len(out.stages) == 2
    assert 0 <= out.pred.min() and out.pred.max() <= 1


def test_adopt_weights_projects_only_the_upsampling_layers(two_hole_batch):
    """A trained transposed LGNet moves onto the resize-conv variant: every other tensor (BatchNorm statistics
    included) is copied and each transposed weight is replaced by its projection."""
    torch.manual_seed(0)
    source = create_model("lgnet_tiny")
    image, mask, _ = two_hole_batch()
    source.train()
    for _ in range(3):  # give the BatchNorm running statistics something other than their defaults
        source(image, mask)
    source.eval()
    target = create_model("lgnet_tiny", upsample="resize_conv")
    target.adopt_weights(source)
    theirs, ours = source.state_dict(), target.state_dict()
    assert list(theirs) == list(ours)
    modules = dict(source.named_modules())
    projected = 0
    for key, value in theirs.items():
        layer = modules[key.rsplit(".", 1)[0]]
        if isinstance(layer, torch.nn.ConvTranspose2d) and key.endswith("weight"):
            torch.testing.assert_close(ours[key], resize_conv_weight(layer))
            projected += 1
        else:
            torch.testing.assert_close(ours[key], value)
    assert projected == sum(isinstance(m, torch.nn.ConvTranspose2d) for m in source.modules())


def test_adopt_weights_refuses_other_options():
    target = create_model("lgnet_tiny", upsample="resize_conv")
    with pytest.raises(InpaintlabError, match="same options"):
        target.adopt_weights(create_model("lgnet_tiny", stages="C+L"))
    with pytest.raises(InpaintlabError, match="same options"):  # a projection cannot be undone
        create_model("lgnet_tiny").adopt_weights(create_model("lgnet_tiny", upsample="resize_conv"))
    with pytest.raises(InpaintlabError, match="cannot start from weights built with other options"):
        create_model("pconv_unet_tiny").adopt_weights(create_model("lgnet_tiny"))
    with pytest.raises(InpaintlabError, match="upsample"):
        create_model("lgnet_tiny", upsample="bilinear")


def test_hole_noise_gives_reproducible_fills_in_eval_and_fresh_noise_in_training(two_hole_batch):
    """``hole_noise`` (issue 23): off by default (the published model's output unchanged); on, it changes only what
    the stages see inside the hole, the same input gives the same fill in eval mode and new noise per call in
    training; it starts from the plain model's weights by a plain copy (``adopt_weights``)."""
    torch.manual_seed(0)
    plain = create_model("lgnet_tiny").eval()
    noisy = create_model("lgnet_tiny", hole_noise=0.2).eval()
    noisy.adopt_weights(plain)
    for key, value in plain.state_dict().items():
        assert torch.equal(noisy.state_dict()[key], value)
    image, mask, _ = two_hole_batch()
    with torch.no_grad():
        reference, first, second = plain(image, mask), noisy(image, mask), noisy(image, mask)
        unchanged = create_model("lgnet_tiny", hole_noise=0.0).eval()
        unchanged.load_state_dict(plain.state_dict())
        assert torch.equal(unchanged(image, mask).pred, reference.pred)
        assert torch.equal(first.pred, second.pred)
        assert not torch.allclose(first.pred, reference.pred, atol=1e-3)
        no_hole = torch.zeros_like(mask)
        assert torch.equal(noisy(image, no_hole).pred, plain(image, no_hole).pred)  # nothing outside the hole
        noisy.train()
        assert not torch.equal(noisy(image, mask).pred, noisy(image, mask).pred)
    with pytest.raises(InpaintlabError, match="hole_noise must be >= 0"):
        create_model("lgnet_tiny", hole_noise=-0.1)


# ---------------------------------------------------------------------------------------------------- errors


def test_user_errors_are_clear():
    model = create_model("lgnet_tiny")
    with pytest.raises(InpaintlabError, match="multiples of 64"):
        model(torch.rand(1, 3, 96, 64), torch.zeros(1, 1, 96, 64))
    with pytest.raises(InpaintlabError, match="stages"):
        create_model("lgnet_tiny", stages="C+X")
    with pytest.raises(InpaintlabError, match="share_weights"):
        create_model("lgnet_tiny", stages="C+L", share_weights=True)
    with pytest.raises(InpaintlabError, match="attention levels"):
        create_model("lgnet_tiny", attention_levels=(6,))
    with pytest.raises(InpaintlabError, match="no option"):
        create_model("lgnet_light", share_weights=True)


@pytest.mark.parametrize("kwargs", [{}, {"share_weights": True}, {"stages": "C+G+G_att"}, {"stages": "C"}])
def test_param_groups_cover_every_parameter_once(kwargs):
    """One optimiser per sub-network (official netG1/G2/G3): every parameter in exactly one group."""
    model = create_model("lgnet_tiny", **kwargs)
    groups = model.param_groups()
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    expected = {"C": 1, "C+G+G_att": 3}.get(kwargs.get("stages"), 2 if kwargs.get("share_weights") else 3)
    assert list(groups) == [f"G{i}" for i in range(1, expected + 1)]
