"""CSTFNet: STI attention, STF/CBAM layers, the siamese contrastive terms, ablations and the model contract."""

import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inpaintlab.errors import InpaintlabError
from inpaintlab.layers.blocks import init_pix2pix_weights
from inpaintlab.layers.cbam import CBAM
from inpaintlab.layers.sti import ConcatFusion, StructureTextureFusion, StructureTextureInpainting, pyramid_masks
from inpaintlab.losses import GeneratorLoss
from inpaintlab.masks import build_mask_source
from inpaintlab.models import create_discriminator, create_model
from inpaintlab.models.cstfnet import CSTFNet, cstfnet, cstfnet_tiny, decoder_feature_distance, simsiam_loss
from inpaintlab.presets import PRESETS
from inpaintlab.types import InpaintOutput


def _inputs(batch=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g)
    mask = torch.zeros(batch, 1, size, size)
    mask[0, :, 10:30, 20:50] = 1
    mask[1:, :, 30:60, 5:25] = 1
    mask2 = torch.zeros(batch, 1, size, size)
    mask2[:, :, 20:44, 16:40] = 1
    return image, mask, mask2, g


def _tiny(**kwargs):
    torch.manual_seed(0)
    return create_model("cstfnet_tiny", **kwargs)


# ---------------------------------------------------------------------------------------------- STI


def _sti_by_loops(guide, guide_geom, target, target_geom, mask, scale=10.0):
    """Eqs. 10-12 one patch pair at a time. geom = (ksize, stride, padding); mask at input resolution.

    Level masks: a cell is hole iff any input pixel in it is (max pooling); keys with a hole cell are skipped
    (all keys are used when none is left); overlapping rebuilt patches are averaged; only hole cells change.
    """

    def cells(x, geom):
        k, s, p = geom
        xp = F.pad(x, (p,) * 4)
        rows, cols = (xp.shape[-2] - k) // s + 1, (xp.shape[-1] - k) // s + 1
        return [(r * s, c * s) for r in range(rows) for c in range(cols)], xp

    def level(size):
        factor = mask.shape[-1] // size[-1]
        return F.max_pool2d(mask, factor)

    gk, tk = guide_geom[0], target_geom[0]
    g_pos, guide_p = cells(guide, guide_geom)
    t_pos, target_p = cells(target, target_geom)
    _, gmask_p = cells(level(guide.shape[-2:]), guide_geom)
    assert len(g_pos) == len(t_pos)
    out = torch.zeros_like(target_p)
    count = torch.zeros_like(target_p[:, :1])
    for n in range(guide.shape[0]):
        g_patch = [guide_p[n, :, r : r + gk, c : c + gk] for r, c in g_pos]
        valid = [bool(gmask_p[n, :, r : r + gk, c : c + gk].sum() == 0) for r, c in g_pos]
        if not any(valid):
            valid = [True] * len(valid)
        for q, (tr, tc) in enumerate(t_pos):
            query = g_patch[q] / max(g_patch[q].norm().item(), 1e-4)
            keys = [m for m in range(len(g_pos)) if valid[m]]
            cos = torch.stack([(query * g_patch[m]).sum() / max(g_patch[m].norm().item(), 1e-4) for m in keys])
            weights = torch.softmax(cos * scale, 0)
            patch = sum(
                w * target_p[n, :, t_pos[m][0] : t_pos[m][0] + tk, t_pos[m][1] : t_pos[m][1] + tk] for w, m in zip(weights, keys)
            )
            out[n, :, tr : tr + tk, tc : tc + tk] += patch
            count[n, :, tr : tr + tk, tc : tc + tk] += 1
    p = target_geom[2]
    crop = (slice(None), slice(None), slice(p, out.shape[-2] - p), slice(p, out.shape[-1] - p))
    filled = out[crop] / count[crop]
    hole = level(target.shape[-2:])
    return target * (1 - hole) + filled * hole


@pytest.mark.parametrize("ksize", [1, 3])
def test_sti_matches_per_patch_loop(ksize):
    g = torch.Generator().manual_seed(ksize)
    shallow = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    deep = torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64)
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.float64)
    mask[0, :, 3:9, 5:12] = 1
    mask[1, :, 10:16, 0:6] = 1
    sti = StructureTextureInpainting(ksize=ksize)
    deep_geom, shallow_geom = (ksize, 1, ksize // 2), (4, 2, 1)
    masks = pyramid_masks(mask, 2)  # 8x8 and 4x4
    assert torch.equal(masks[1], F.adaptive_max_pool2d(mask, 4))
    structure = sti.structure(shallow, deep, *masks)
    texture = sti.texture(shallow, deep, *masks)
    torch.testing.assert_close(structure, _sti_by_loops(deep, deep_geom, shallow, shallow_geom, mask))
    torch.testing.assert_close(texture, _sti_by_loops(shallow, shallow_geom, deep, deep_geom, mask))
    # only hole cells of the target change, and they do change
    hole8 = F.max_pool2d(mask, 2).bool().expand_as(shallow)
    assert torch.equal(structure[~hole8], shallow[~hole8]) and not torch.allclose(structure[hole8], shallow[hole8])


def test_sti_all_hole_level_stays_finite():
    g = torch.Generator().manual_seed(0)
    shallow, deep = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 2, 2, generator=g)
    masks = pyramid_masks(torch.ones(1, 1, 8, 8), 2)
    sti = StructureTextureInpainting()
    for out in (sti.structure(shallow, deep, *masks), sti.texture(shallow, deep, *masks)):
        assert torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------- CBAM / STF


def test_cbam_channel_then_spatial_with_max_first_pool():
    torch.manual_seed(0)
    cbam = CBAM(32)
    gate = cbam.spatial_gate
    assert cbam.channel_gate.mlp[0].out_features == 2  # reduction 16
    assert gate.norm.eps == 1e-5 and gate.norm.momentum == 0.01 and gate.conv.bias is None
    with torch.no_grad():
        gate.norm.running_mean.fill_(0.3)
        gate.norm.running_var.fill_(2.0)
        gate.norm.weight.fill_(1.5)
        gate.norm.bias.fill_(-0.2)
    cbam.eval()
    x = torch.randn(2, 32, 6, 5)
    l1, l2 = cbam.channel_gate.mlp[0], cbam.channel_gate.mlp[2]

    def mlp(v):
        return F.linear(F.relu(F.linear(v, l1.weight, l1.bias)), l2.weight, l2.bias)

    channel_out = x * torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None]
    pooled = torch.cat([channel_out.max(dim=1, keepdim=True).values, channel_out.mean(dim=1, keepdim=True)], 1)
    logits = F.conv2d(pooled, gate.conv.weight, padding=3)
    logits = (logits - 0.3) / (2.0 + 1e-5) ** 0.5 * 1.5 - 0.2
    expected = channel_out * torch.sigmoid(logits)
    torch.testing.assert_close(cbam(x), expected)


def test_stf_follows_eqs_13_14():
    torch.manual_seed(0)
    stf = StructureTextureFusion(16).eval()
    ft, fs = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)

    def conv(module, x):
        return F.conv2d(x, module.weight, module.bias, padding=module.padding)

    fp = stf.cbam(conv(stf.merge, torch.cat([ft, fs], 1)))
    fu = conv(
        stf.out,
        torch.cat(
            [ft * conv(stf.texture_gate, torch.cat([ft, fp], 1)), fs * conv(stf.structure_gate, torch.cat([fs, fp], 1))], 1
        ),
    )
    torch.testing.assert_close(stf(ft, fs), fu)
    assert stf.merge.kernel_size == (3, 3) and stf.out.kernel_size == (1, 1)
    concat = ConcatFusion(16)
    torch.testing.assert_close(concat(ft, fs), conv(concat.conv, torch.cat([ft, fs], 1)))


# --------------------------------------------------------------------------------------- contrastive


def test_simsiam_loss_stops_gradient_at_z():
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(4, 8, generator=g, requires_grad=True) for _ in range(4))
    loss = simsiam_loss(p1, p2, z1, z2)
    unit = [t.detach() / t.detach().norm(dim=1, keepdim=True) for t in (p1, p2, z1, z2)]
    expected = -0.5 * ((unit[0] * unit[3]).sum(1).mean() + (unit[1] * unit[2]).sum(1).mean())
    torch.testing.assert_close(loss.detach(), expected)
    loss.backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0


def test_decoder_feature_distance_is_eq20():
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 2, 16, 16, generator=g)]
    b = [torch.randn_like(t) for t in a]
    norm = sum(torch.stack([(x[i] - y[i]).pow(2).sum().sqrt() for i in range(2)]).mean() for x, y in zip(a, b))
    torch.testing.assert_close(decoder_feature_distance(a, b, "norm"), norm)
    mse = sum(F.mse_loss(x, y) for x, y in zip(a, b))
    torch.testing.assert_close(decoder_feature_distance(a, b, "mse"), mse)


def test_eq20_readings_normalised_by_size_and_scale():
    """ "rms" and "normalized" do not grow with the map size; "normalized" cannot be lowered by shrinking the maps."""
    g = torch.Generator().manual_seed(1)
    a = [torch.randn(2, 4, 8, 8, generator=g), torch.rand(2, 2, 16, 16, generator=g)]
    b = [torch.randn_like(t) + 0.5 * t for t in a]
    unit = lambda t: t / t.norm()  # noqa: E731
    want = sum(torch.stack([(unit(x[i]) - unit(y[i])).norm() for i in range(2)]).mean() for x, y in zip(a, b))
    torch.testing.assert_close(decoder_feature_distance(a, b, "normalized"), want)
    rms = sum(torch.stack([(x[i] - y[i]).pow(2).mean().sqrt() for i in range(2)]).mean() for x, y in zip(a, b))
    torch.testing.assert_close(decoder_feature_distance(a, b, "rms"), rms)
    bigger = lambda maps: [F.interpolate(t, scale_factor=4, mode="nearest") for t in maps]  # noqa: E731
    for reduction in ("normalized", "rms"):  # the same maps at 4x the side: the same value
        torch.testing.assert_close(
            decoder_feature_distance(bigger(a), bigger(b), reduction), decoder_feature_distance(a, b, reduction)
        )
    literal = decoder_feature_distance(a, b, "norm")
    torch.testing.assert_close(decoder_feature_distance(bigger(a), bigger(b), "norm"), 4 * literal)
    shrunk = [[0.01 * t for t in maps] for maps in (a, b)]  # a decoder that scales its activations down
    torch.testing.assert_close(decoder_feature_distance(*shrunk, "normalized"), decoder_feature_distance(a, b, "normalized"))
    assert decoder_feature_distance(*shrunk, "norm") < 0.011 * literal
    assert float(decoder_feature_distance(a, a, "normalized")) == 0.0
    assert 0 < float(decoder_feature_distance(a, [-t for t in a], "normalized")) == pytest.approx(2 * len(a))
    with pytest.raises(InpaintlabError, match="feature_l2"):
        decoder_feature_distance(a, b, "l2")
    assert inspect.signature(CSTFNet).parameters["feature_l2"].default == "normalized"
    for factory in (cstfnet, cstfnet_tiny):  # the registered variants keep the class default
        with torch.device("meta"):
            assert factory().feature_l2 == "normalized"


def _smooth_batch(size, seed=0):
    """Two smooth seeded images (2,3,size,size) and two independent seeded stroke masks per image."""
    g = torch.Generator().manual_seed(seed)
    image = F.interpolate(torch.rand(2, 3, 8, 8, generator=g), size=(size, size), mode="bicubic").clamp(0, 1)
    rng, source = np.random.default_rng(seed), build_mask_source("strokes", size)
    return image, torch.stack([source(rng) for _ in range(2)]), torch.stack([source(rng) for _ in range(2)])


@pytest.mark.slow
@pytest.mark.parametrize("size", [128, 256])
def test_calibrated_eq20_term_stays_below_the_pixel_terms_at_initialisation(size):
    """The CSTFNet preset's lambda_con2 x Eq. 20 (model default reading) < its pixel terms on a fresh full-width model."""
    cfg = PRESETS["cstfnet_places2"]
    torch.manual_seed(0)
    model = CSTFNet(coarse_downs=int(math.log2(size)), **cfg.model.kwargs).train()  # cstfnet at 256 px
    image, mask, mask2 = _smooth_batch(size)
    loss_cfg = dataclasses.replace(cfg.loss, perceptual=0.0, style=0.0, adversarial=0.0)
    with torch.no_grad():  # the two branches of model(image, mask, mask2), run once
        b1, b2 = model.run_branch(image * (1 - mask), mask), model.run_branch(image * (1 - mask2), mask2)
        aux = model.contrastive_terms(b1, b2)
        out = InpaintOutput(pred=(b1.pred + 1) / 2, stages=((b1.coarse + 1) / 2,), aux=aux)
        total, logs = GeneratorLoss(loss_cfg)(out, image, mask)
    pixel = float(loss_cfg.valid * logs["g/valid"] + loss_cfg.hole * logs["g/hole"])
    weighted = loss_cfg.aux["feature_l2"] * float(aux["feature_l2"])
    print(f"{size} px: pixel terms {pixel:.3f}, weighted Eq. 20 {weighted:.3f}")
    assert 0.02 * pixel < weighted < 0.5 * pixel  # it counts, but does not outweigh the pixel terms
    assert float(total) == pytest.approx(pixel + weighted + loss_cfg.aux["contrastive"] * float(aux["contrastive"]), rel=1e-5)
    literal = 0.01 * float(decoder_feature_distance(b1.decoder_features, b2.decoder_features, "norm"))
    assert literal > pixel  # the literal norm with the earlier weight 0.01 outweighed them


def test_training_with_mask2_returns_terms_matching_its_branches():
    model = _tiny().train()
    image, mask, mask2, _ = _inputs()
    out = model(image, mask, mask2)
    assert set(out.aux) == {"contrastive", "feature_l2"} and all(v.ndim == 0 for v in out.aux.values())
    with torch.no_grad():  # recompute from the two branches by hand (train-mode BN: batch statistics again)
        b1 = model.run_branch(image * (1 - mask), mask)
        b2 = model.run_branch(image * (1 - mask2), mask2)
        z1, z2 = model.projector(b1.latent.mean((2, 3))), model.projector(b2.latent.mean((2, 3)))
        expected = simsiam_loss(model.predictor(z1), model.predictor(z2), z1, z2)
        unit = lambda t: t / t.norm()  # noqa: E731 - the default feature_l2="normalized"
        l2 = sum(
            torch.stack([(unit(x[i]) - unit(y[i])).norm() for i in range(2)]).mean()
            for x, y in zip(b1.decoder_features, b2.decoder_features)
        )
    torch.testing.assert_close(out.aux["contrastive"].detach(), expected)
    torch.testing.assert_close(out.aux["feature_l2"].detach(), l2)
    assert [f.shape[-1] for f in b1.decoder_features] == [8, 16, 32, 64]
    assert out.aux["feature_l2"] > 0
    # every parameter is connected to the objective (a tiny CBAM MLP may hold a ReLU-dead unit at init)
    (out.pred.mean() + out.stages[0].mean() + out.aux["contrastive"] + out.aux["feature_l2"]).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    assert model.predictor[0].weight.grad.abs().sum() > 0 and model.projector[0].weight.grad.abs().sum() > 0


def test_identical_masks_give_zero_feature_l2_with_finite_gradients():
    model = _tiny().train()
    image, mask, _, _ = _inputs()
    out = model(image, mask, mask.clone())
    assert out.aux["feature_l2"].item() == 0.0
    out.aux["feature_l2"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_eval_is_deterministic_single_branch_and_ignores_mask2():
    model = _tiny().eval()
    image, mask, mask2, _ = _inputs()
    with torch.no_grad():
        a, b, c = model(image, mask), model(image, mask), model(image, mask, mask2)
    assert a.aux == {} and c.aux == {}
    assert torch.equal(a.pred, b.pred) and torch.equal(a.pred, c.pred) and torch.equal(a.stages[0], c.stages[0])
    assert a.pred.shape == image.shape and len(a.stages) == 1 and a.stages[0].shape == image.shape
    assert 0 <= a.pred.min() and a.pred.max() <= 1


def test_training_without_mask2_runs_one_branch():
    out = _tiny().train()(*_inputs()[:2])
    assert out.aux == {}


def test_hole_noise_invariance_in_both_modes():
    model = _tiny()
    init_pix2pix_weights(model, std=0.1)  # an output that visibly depends on its input
    image, mask, mask2, g = _inputs()
    noise = torch.rand(image.shape, generator=g)
    model.eval()
    with torch.no_grad():
        reference = model(image, mask).pred
        torch.testing.assert_close(reference, model(image + mask * noise, mask).pred, rtol=0, atol=1e-6)
        assert (reference - model(image + (1 - mask) * noise, mask).pred).abs().max() > 1e-3  # known pixels matter
    model.train()
    with torch.no_grad():
        clean = model(image, mask, mask2)
        noisy = model(image + mask * mask2 * noise, mask, mask2)  # garbage where both branches see a hole
    torch.testing.assert_close(clean.pred, noisy.pred, rtol=0, atol=1e-6)
    for name in clean.aux:
        torch.testing.assert_close(clean.aux[name], noisy.aux[name], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------- ablations


def _count_calls(model, name):
    calls = []
    original = getattr(model.refine.sti, name)
    setattr(model.refine.sti, name, lambda *a: calls.append(1) or original(*a))
    return calls


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"structure": False},
        {"texture": False},
        {"coarse": False},
        {"contrastive": False},
        {"fusion": "concat"},
        {"cascade": True},
        {"stf_gate": "sigmoid"},
        {"feature_l2": "mse"},
        {"feature_l2": "norm"},
        {"feature_l2": "rms"},
    ],
)
def test_each_ablation_builds_and_runs(kwargs):
    model = _tiny(**kwargs).train()
    structure_calls, texture_calls = _count_calls(model, "structure"), _count_calls(model, "texture")
    image, mask, mask2, _ = _inputs()
    out = model(image, mask, mask2)
    branches = 1 if kwargs.get("contrastive", True) is False else 2
    assert len(structure_calls) == (0 if kwargs.get("structure", True) is False else 3 * branches)
    assert len(texture_calls) == (0 if kwargs.get("texture", True) is False else 3 * branches)
    assert out.pred.shape == image.shape and torch.isfinite(out.pred).all()
    assert len(out.stages) == (0 if kwargs.get("coarse", True) is False else 1)
    assert set(out.aux) == (set() if branches == 1 else {"contrastive", "feature_l2"})
    assert hasattr(model, "projector") == (branches == 2)
    fusion_type = ConcatFusion if kwargs.get("fusion") == "concat" else StructureTextureFusion
    assert all(isinstance(f, fusion_type) for f in model.refine.fusions)


def test_ablations_change_the_output():
    image, mask, _, _ = _inputs()
    preds = []
    for kwargs in ({}, {"structure": False}, {"texture": False}):
        model = _tiny(**kwargs).eval()  # same weights: STI has no parameters
        torch.manual_seed(1)
        init_pix2pix_weights(model, std=0.1)  # N(0, 0.02) lets the signal fade to ~1e-6 through 14 layers
        with torch.no_grad():
            preds.append(model(image, mask).pred)
    assert preds[0].std() > 1e-3
    assert (preds[0] - preds[1]).abs().max() > 1e-3 and (preds[0] - preds[2]).abs().max() > 1e-3


# ---------------------------------------------------------------------------------- sizes and errors


def _conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def _expected_params(ngf, downs, cnum, levels):
    w = [4] + [ngf * min(2 ** (d - 1), 8) for d in range(1, downs + 1)]
    coarse = _conv(4, w[1], 3)
    coarse += sum(_conv(w[d], w[d + 1], 3, bias=d == downs - 1) + (2 * w[d + 1] if d < downs - 1 else 0) for d in range(1, downs))
    coarse += sum(_conv(w[d] if d == downs else 2 * w[d], w[d - 1], 3, bias=False) + 2 * w[d - 1] for d in range(downs, 1, -1))
    coarse += _conv(2 * w[1], 3, 3)
    r = [cnum * (1, 2, 4, 8, 16, 16)[i] for i in range(levels)]
    refine = sum(_conv(cin, cout, 3) for cin, cout in zip([4] + r[:-1], r))
    for c in r:  # STF: merge, CBAM (MLP, 7x7 conv, BN), two gate convs, 1x1 out
        h = max(c // 16, 1)
        refine += 3 * _conv(2 * c, c, 3) + (c * h + h + h * c + c) + 2 * 49 + 2 + _conv(2 * c, c, 1)
    refine += sum(_conv(r[i + 1], r[i], 4) for i in range(levels - 1)) + _conv(r[0], r[0], 4) + _conv(r[0], 3, 3)
    c, d = r[-1], r[-1]
    heads = (c * c + 2 * c) * 2 + c * d + (d * (d // 4) + 2 * (d // 4)) + (d // 4) * d + d
    return coarse + refine + heads


def test_parameter_counts_and_coarse_layout():
    tiny = _tiny()
    assert sum(p.numel() for p in tiny.parameters()) == _expected_params(8, 6, 8, 4) == 648_350
    full = create_model("cstfnet")
    total = sum(p.numel() for p in full.parameters())
    print(f"cstfnet parameters: {total:,}")
    assert total == _expected_params(64, 8, 32, 6) == 76_779_164
    convs = [m for m in full.coarse_net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(convs) == 16 and all(m.kernel_size == (3, 3) and m.stride == (2, 2) for m in convs)
    assert full.size_multiple == 256 and tiny.size_multiple == 64


def test_user_errors():
    model = _tiny()
    image, mask, mask2, _ = _inputs()
    with pytest.raises(InpaintlabError, match="multiples of 64"):
        model(image[..., :48, :48], mask[..., :48, :48])
    with pytest.raises(InpaintlabError, match="batch of at least 2"):
        model.train()(image[:1], mask[:1], mask2[:1])
    with pytest.raises(InpaintlabError, match="fusion"):
        create_model("cstfnet_tiny", fusion="sum")


def test_discriminator_is_registered():
    d = create_discriminator("cstfnet_tiny")
    assert d(torch.rand(2, 3, 64, 64)).shape == (2, 1, 3, 3)
    assert sum(p.numel() for p in create_discriminator("cstfnet").parameters()) == 4_318_401


def test_refinement_init_lets_the_signal_reach_the_output():
    """He init (default) keeps the un-normalised refinement net's output image-dependent; N(0,0.02) flattens it."""
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 16:40, 20:44] = 1
    spread = {}
    for init in ("kaiming", "normal"):
        torch.manual_seed(0)
        model = create_model("cstfnet_tiny", refine_init=init).eval()
        with torch.no_grad():
            spread[init] = model(image, mask).pred.std().item()
    assert spread["kaiming"] > 20 * spread["normal"]
