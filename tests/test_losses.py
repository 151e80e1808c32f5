"""Losses: functional terms against independent numpy computations, and GeneratorLoss wiring."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from inpaintlab import InpaintlabError
from inpaintlab.config import LossConfig
from inpaintlab.losses import (
    DiscriminatorLoss,
    GeneratorLoss,
    discriminator_adversarial,
    discriminator_logits,
    generator_adversarial,
    gram_matrix,
    masked_l1,
    perceptual_loss,
    scale_for_vgg,
    style_loss,
    total_variation,
)
from inpaintlab.types import InpaintDiscriminator, InpaintOutput


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _batch(b=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, size, size, generator=g)
    mask = (torch.rand(b, 1, size, size, generator=g) > 0.6).float()
    return image, mask


def test_masked_l1_is_per_image_sum_over_region_divided_by_3_sum_region():
    pred, target = _rand(3, 3, 8, 8, seed=1), _rand(3, 3, 8, 8, seed=2)
    region = (_rand(3, 1, 8, 8, seed=3) > 0.5).float()
    region[2] = 0  # an image without hole contributes 0
    p, t, r = pred.numpy(), target.numpy(), region.numpy()
    expected = []
    for i in range(3):
        n = r[i].sum()
        expected.append(0.0 if n == 0 else np.abs(p[i] - t[i])[:, r[i, 0] > 0].sum() / (3 * n))
    assert masked_l1(pred, target, region).item() == pytest.approx(np.mean(expected), rel=1e-5)


def test_total_variation_matches_numpy():
    x = _rand(2, 3, 7, 9, seed=4)
    a = x.numpy()
    expected = np.abs(np.diff(a, axis=2)).mean() + np.abs(np.diff(a, axis=3)).mean()
    assert total_variation(x).item() == pytest.approx(expected, rel=1e-5)


def test_gram_style_and_perceptual_match_explicit_formulas():
    fa = [_rand(2, 4, 5, 6, seed=5), _rand(2, 8, 3, 3, seed=6)]
    fb = [_rand(2, 4, 5, 6, seed=7), _rand(2, 8, 3, 3, seed=8)]
    style, perc = 0.0, 0.0
    for a, b in zip(fa, fb):
        a_, b_ = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
        _, c, h, w = a_.shape
        ga = np.einsum("bchw,bdhw->bcd", a_, a_) / (c * h * w)
        gb = np.einsum("bchw,bdhw->bcd", b_, b_) / (c * h * w)
        style += np.abs(ga - gb).mean()
        perc += np.abs(a_ - b_).mean()
        assert np.allclose(gram_matrix(a).numpy(), ga, atol=1e-6)
    assert style_loss(fa, fb).item() == pytest.approx(style, rel=1e-5)
    assert perceptual_loss(fa, fb).item() == pytest.approx(perc, rel=1e-5)


LOGITS_F = torch.tensor([[-2.0, 0.5], [1.5, -0.25]])
LOGITS_R = torch.tensor([[0.75, 2.0], [-0.5, 1.25]])


def _sp(x):
    return np.log1p(np.exp(x))


@pytest.mark.parametrize(
    "mode,g_expected,d_expected",
    [
        ("lsgan", lambda f, r: ((f - 1) ** 2).mean(), lambda f, r: 0.5 * (((r - 1) ** 2).mean() + (f**2).mean())),
        ("hinge", lambda f, r: -f.mean(), lambda f, r: np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean()),
        ("nsgan", lambda f, r: -np.log(1 / (1 + np.exp(-f))).mean(), lambda f, r: _sp(-r).mean() + _sp(f).mean()),
        (
            "relativistic",
            lambda f, r: _sp(-(f - r.mean())).mean() + _sp(r - f.mean()).mean(),
            lambda f, r: _sp(-(r - f.mean())).mean() + _sp(f - r.mean()).mean(),
        ),
    ],
)
def test_gan_losses_match_their_formulas(mode, g_expected, d_expected):
    f, r = LOGITS_F.numpy().astype(np.float64), LOGITS_R.numpy().astype(np.float64)
    assert generator_adversarial(mode, LOGITS_F, LOGITS_R).item() == pytest.approx(g_expected(f, r), rel=1e-5)
    assert discriminator_adversarial(mode, LOGITS_R, LOGITS_F).item() == pytest.approx(d_expected(f, r), rel=1e-5)


def test_vgg_input_scalings():
    x = _rand(1, 3, 2, 2, seed=9)
    assert torch.allclose(scale_for_vgg(x, "minus1_1"), x * 2 - 1)
    assert torch.equal(scale_for_vgg(x, "unit"), x)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = (x.numpy() - mean[None, :, None, None]) / std[None, :, None, None]
    assert np.allclose(scale_for_vgg(x, "imagenet").numpy(), expected, atol=1e-6)


class _PatchD(InpaintDiscriminator):
    takes_mask = False

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 1, 4, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


def _three_stage_output(image, seed=10):
    g = torch.Generator().manual_seed(seed)
    outs = [torch.rand(image.shape, generator=g).requires_grad_(True) for _ in range(3)]
    return InpaintOutput(pred=outs[2], stages=(outs[0], outs[1])), outs


def test_pixel_terms_cover_every_output_with_lgnet_normalisation():
    image, mask = _batch()
    out, outs = _three_stage_output(image)
    cfg = LossConfig(valid=1.0, hole=6.0)
    total, logs = GeneratorLoss(cfg)(out, image, mask)
    img, m = image.numpy(), mask.numpy()
    valid = hole = 0.0
    for o in outs:
        d = np.abs(o.detach().numpy() - img)
        for region, acc in ((1 - m, "v"), (m, "h")):
            per = [(d[i] * region[i]).sum() / (3 * region[i].sum()) for i in range(2)]
            if acc == "v":
                valid += np.mean(per)
            else:
                hole += np.mean(per)
    assert logs["g/valid"].item() == pytest.approx(valid, rel=1e-5)
    assert logs["g/hole"].item() == pytest.approx(hole, rel=1e-5)
    assert total.item() == pytest.approx(valid + 6 * hole, rel=1e-5)


def test_feature_terms_only_on_selected_outputs_raw_and_composite():
    from inpaintlab.features import VGG16Features

    image, mask = _batch(size=32)
    out, outs = _three_stage_output(image)
    vgg = VGG16Features(weights="random")
    cfg = LossConfig(valid=0, hole=0, perceptual=0.05, style=120, tv=0.1, feature_outputs=(1, 2))
    total, logs = GeneratorLoss(cfg, features=vgg)(out, image, mask)
    total.backward()
    assert outs[0].grad is None or outs[0].grad.abs().sum() == 0  # stage 1: no feature terms (LGNet)
    for o in outs[1:]:
        assert o.grad.abs().sum() > 0
    # independent recomputation of the selected terms
    target = vgg(image * 2 - 1)
    perc = style = tv = 0.0
    for o in outs[1:]:
        o = o.detach()
        comp = o * mask + image * (1 - mask)
        for cand in (o, comp):
            feats = vgg(cand * 2 - 1)
            perc += sum((a - b).abs().mean().item() for a, b in zip(feats, target))
            for a, b in zip(feats, target):
                n = a.shape[1] * a.shape[2] * a.shape[3]
                ga = torch.einsum("bchw,bdhw->bcd", a, a) / n
                gb = torch.einsum("bchw,bdhw->bcd", b, b) / n
                style += (ga - gb).abs().mean().item()
        h = (comp * mask).numpy()
        tv += np.abs(np.diff(h, axis=2)).mean() + np.abs(np.diff(h, axis=3)).mean()
    assert logs["g/perceptual"].item() == pytest.approx(perc, rel=1e-4)
    assert logs["g/style"].item() == pytest.approx(style, rel=1e-4)
    assert logs["g/tv"].item() == pytest.approx(tv, rel=1e-5)
    assert total.item() == pytest.approx(0.05 * perc + 120 * style + 0.1 * tv, rel=1e-4)


@pytest.mark.parametrize(
    "adv_input,grad_index", [("first_composite", 0), ("final_composite", 2), ("first_raw", 0), ("final_raw", 2)]
)
def test_adversarial_term_reaches_only_the_chosen_image(adv_input, grad_index):
    image, mask = _batch()
    out, outs = _three_stage_output(image)
    d = _PatchD()
    cfg = LossConfig(valid=0, hole=0, adversarial=0.1, adv_input=adv_input)
    total, logs = GeneratorLoss(cfg, discriminator=d)(out, image, mask)
    total.backward()
    for k, o in enumerate(outs):
        has_grad = o.grad is not None and o.grad.abs().sum() > 0
        assert has_grad == (k == grad_index)
    grad = outs[grad_index].grad
    known = (1 - mask).expand_as(grad).bool()
    if adv_input.endswith("composite"):
        assert grad[known].abs().sum() == 0  # the composite takes known pixels from the image
    else:
        assert grad[known].abs().sum() > 0
    fake = outs[grad_index].detach()
    if adv_input.endswith("composite"):
        fake = fake * mask + image * (1 - mask)
    assert logs["g/adv"].item() == pytest.approx(((d(fake) - 1) ** 2).mean().item(), rel=1e-5)


def test_discriminator_loss_detaches_the_generator():
    image, mask = _batch()
    out, outs = _three_stage_output(image)
    d = _PatchD()
    loss, logs = DiscriminatorLoss(LossConfig(adv_input="final_composite"))(d, out, image, mask)
    loss.backward()
    assert all(o.grad is None for o in outs)
    assert d.conv.weight.grad.abs().sum() > 0
    fake = outs[2].detach() * mask + image * (1 - mask)
    expected = 0.5 * (((d(image) - 1) ** 2).mean() + (d(fake) ** 2).mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_aux_terms_are_weighted_by_name_and_unknown_names_are_errors():
    image, mask = _batch()
    out, _ = _three_stage_output(image)
    out.aux = {"contrastive": torch.tensor(2.0), "memory": torch.tensor([3.0])}
    cfg = LossConfig(valid=0, hole=0, aux={"contrastive": 0.5, "memory": 2.0})
    total, logs = GeneratorLoss(cfg)(out, image, mask)
    assert total.item() == pytest.approx(0.5 * 2 + 2 * 3)
    assert logs["g/aux/memory"].item() == 3.0
    with pytest.raises(InpaintlabError, match="loss.aux.memory"):
        GeneratorLoss(dataclasses.replace(cfg, aux={"contrastive": 1.0}))(out, image, mask)


def test_configuration_errors_are_clear():
    with pytest.raises(InpaintlabError, match="need a discriminator"):
        GeneratorLoss(LossConfig(adversarial=0.1))
    image, mask = _batch()
    out, _ = _three_stage_output(image)
    cfg = LossConfig(tv=0.1, feature_outputs=(5,))
    with pytest.raises(InpaintlabError, match="feature_outputs"):
        GeneratorLoss(cfg)(out, image, mask)


def test_tv_region_composite_follows_eq6_as_written():
    image, mask = _batch()
    out, outs = _three_stage_output(image)
    cfg = LossConfig(valid=0, hole=0, tv=1.0, tv_region="composite", feature_outputs=(-1,))
    _, logs = GeneratorLoss(cfg)(out, image, mask)
    comp = (outs[2].detach() * mask + image * (1 - mask)).numpy()
    expected = np.abs(np.diff(comp, axis=2)).mean() + np.abs(np.diff(comp, axis=3)).mean()
    assert logs["g/tv"].item() == pytest.approx(expected, rel=1e-5)
    assert logs["g/perceptual"].item() == 0 and logs["g/style"].item() == 0


def test_pixel_norm_all_pixels_and_l2_distance_match_numpy():
    image, mask = _batch()
    out, outs = _three_stage_output(image)
    img, m = image.numpy().astype(np.float64), mask.numpy()
    for distance, power in (("l1", 1), ("l2", 2)):
        cfg = LossConfig(valid=1.0, hole=6.0, pixel_norm="all_pixels", pixel_distance=distance)
        _, logs = GeneratorLoss(cfg)(out, image, mask)
        errs = [np.abs(o.detach().numpy() - img) ** power for o in outs]
        assert logs["g/valid"].item() == pytest.approx(sum((e * (1 - m)).mean() for e in errs), rel=1e-5)
        assert logs["g/hole"].item() == pytest.approx(sum((e * m).mean() for e in errs), rel=1e-5)
    # CICM's L2 inpainting loss: valid + hole with equal weights is the plain MSE of each output
    cfg = LossConfig(valid=1.0, hole=1.0, pixel_norm="all_pixels", pixel_distance="l2")
    total, _ = GeneratorLoss(cfg)(out, image, mask)
    assert total.item() == pytest.approx(sum(((o.detach().numpy() - img) ** 2).mean() for o in outs), rel=1e-5)
    with pytest.raises(InpaintlabError, match="pixel_norm"):
        GeneratorLoss(dataclasses.replace(cfg, pixel_norm="hole"))(out, image, mask)


class _MaskedHeadsD(InpaintDiscriminator):
    """Two heads like SRPNet's: a conv on the image and the mean of the image over the hole, per sample."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 1, 4, stride=2, padding=1)
        self.masks_seen = []

    def forward(self, image, mask=None):
        self.masks_seen.append(mask)
        hole_mean = (image * mask).sum(dim=(1, 2, 3)) / (3 * mask.sum(dim=(1, 2, 3)))
        return [self.conv(image), hole_mean.view(-1, 1, 1, 1) * 4 - 2]


@pytest.mark.parametrize("mode", ["lsgan", "hinge", "relativistic"])
def test_gan_terms_average_over_a_list_of_logits_and_pass_the_mask(mode):
    image, mask = _batch()
    out, outs = _three_stage_output(image)
    d = _MaskedHeadsD()
    cfg = LossConfig(valid=0, hole=0, adversarial=1.0, gan_mode=mode, adv_input="final_composite")
    _, logs = GeneratorLoss(cfg, discriminator=d)(out, image, mask)
    assert all(seen is mask for seen in d.masks_seen)
    fake = outs[2].detach() * mask + image * (1 - mask)
    with torch.no_grad():
        fake_heads, real_heads = d(fake, mask), d(image, mask)
    g_expected = np.mean([generator_adversarial(mode, f, r).item() for f, r in zip(fake_heads, real_heads)])
    d_expected = np.mean([discriminator_adversarial(mode, r, f).item() for f, r in zip(fake_heads, real_heads)])
    assert logs["g/adv"].item() == pytest.approx(g_expected, rel=1e-5)
    d_loss, d_logs = DiscriminatorLoss(cfg)(d, out, image, mask)
    assert d_loss.item() == pytest.approx(d_expected, rel=1e-5)
    assert d_logs["d/real"].item() == pytest.approx(np.mean([r.mean().item() for r in real_heads]), rel=1e-5)


def test_every_composite_sums_the_generator_term_and_averages_the_discriminator_term():
    image, mask = _batch()
    out, outs = _three_stage_output(image)
    d = _PatchD()  # a D whose forward takes the image only is called without the mask
    cfg = LossConfig(valid=0, hole=0, adversarial=0.1, adv_input="every_composite")
    total, logs = GeneratorLoss(cfg, discriminator=d)(out, image, mask)
    total.backward()
    assert all(o.grad is not None and o.grad.abs().sum() > 0 for o in outs)
    with torch.no_grad():
        fakes = [o.detach() * mask + image * (1 - mask) for o in outs]
        g_expected = sum(((d(f) - 1) ** 2).mean().item() for f in fakes)
        d_expected = np.mean([0.5 * (((d(image) - 1) ** 2).mean() + (d(f) ** 2).mean()).item() for f in fakes])
    assert logs["g/adv"].item() == pytest.approx(g_expected, rel=1e-5)
    assert DiscriminatorLoss(cfg)(d, out, image, mask)[0].item() == pytest.approx(d_expected, rel=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "area"])
def test_pyramid_aux_outputs_get_the_weighted_pyramid_l1(mode):
    image, mask = _batch(size=32)
    out, _ = _three_stage_output(image)
    g = torch.Generator().manual_seed(3)
    pyramid = tuple(torch.rand(2, 3, s, s, generator=g) for s in (4, 8, 16))
    out.aux = {"pyramid": pyramid}
    cfg = LossConfig(valid=0, hole=0, aux={"pyramid": 0.5}, pyramid_downsample=mode)
    total, logs = GeneratorLoss(cfg)(out, image, mask)
    img = image.numpy().astype(np.float64)
    expected = 0.0
    for p in pyramid:
        s = p.shape[-1]
        if mode == "area":  # mean over each block of the full-resolution image
            k = 32 // s
            target = img.reshape(2, 3, s, k, s, k).mean(axis=(3, 5))
        else:  # bilinear with align_corners=True: sample positions i * (32-1)/(s-1)
            pos = np.arange(s) * (32 - 1) / (s - 1)
            lo = np.floor(pos).astype(int)
            hi = np.minimum(lo + 1, 31)
            w = pos - lo
            rows = img[:, :, lo] * (1 - w)[:, None] + img[:, :, hi] * w[:, None]
            target = rows[..., lo] * (1 - w) + rows[..., hi] * w
        expected += np.abs(p.numpy() - target).mean()
    assert logs["g/aux/pyramid"].item() == pytest.approx(expected, rel=1e-5)
    assert total.item() == pytest.approx(0.5 * expected, rel=1e-5)


def test_every_registered_discriminator_takes_image_and_optional_mask():
    import inspect

    from inpaintlab.models import create_discriminator, list_discriminators

    image, mask = _batch(b=2, size=64)
    for name in list_discriminators():
        if name.startswith("_"):  # test-local registrations
            continue
        params = list(inspect.signature(create_discriminator(name).forward).parameters.values())
        assert [p.name for p in params[:2]] == ["image", "mask"] and params[1].default is None, name
    for name in ("lgnet_tiny", "msanet_tiny", "srpnet_tiny", "cstfnet_tiny", "cicm_tiny"):
        d = create_discriminator(name)
        with torch.no_grad():
            heads = discriminator_logits(d, image, mask)
        assert all(h.shape[0] == 2 and h.shape[1] == 1 for h in heads)
        assert len(heads) == (2 if name == "srpnet_tiny" else 1)


def test_pixel_range_minus1_1_reproduces_the_official_lgnet_pixel_and_tv_terms():
    """Official LGNet computes L1 and TV on [-1,1] images: L1 per image / (3*sum M), TV of (2*comp-1)*M."""
    g = torch.Generator().manual_seed(3)
    image, raw = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    mask = (torch.rand(2, 1, 16, 16, generator=g) > 0.6).float()
    cfg = LossConfig(valid=1.0, hole=6.0, tv=0.1, feature_outputs=(0,), pixel_range="minus1_1")
    _, logs = GeneratorLoss(cfg)(InpaintOutput(pred=raw), image, mask)
    a, b, m = raw.numpy() * 2 - 1, image.numpy() * 2 - 1, mask.numpy()
    hole = np.mean([(np.abs(a[i] - b[i]) * m[i]).sum() / (3 * m[i].sum()) for i in range(2)])
    comp = (raw * mask + image * (1 - mask)).numpy() * 2 - 1
    x = comp * m
    tv = np.abs(np.diff(x, axis=2)).mean() + np.abs(np.diff(x, axis=3)).mean()
    assert float(logs["g/hole"]) == pytest.approx(hole, rel=1e-5)
    assert float(logs["g/tv"]) == pytest.approx(tv, rel=1e-5)
    _, unit = GeneratorLoss(dataclasses.replace(cfg, pixel_range="unit"))(InpaintOutput(pred=raw), image, mask)
    assert float(logs["g/hole"]) == pytest.approx(2 * float(unit["g/hole"]), rel=1e-5)


def test_feature_images_raw_only_skips_the_composite():
    """CSTFNet Eqs. 18-19: perceptual/style on the raw output only; the default adds the composite."""
    g = torch.Generator().manual_seed(4)
    image, raw = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    features = lambda x: [x.mean(1, keepdim=True)]  # noqa: E731  a transparent stand-in for VGG16
    cfg = LossConfig(perceptual=1.0, feature_outputs=(0,), vgg_input="unit")
    raw_only = GeneratorLoss(dataclasses.replace(cfg, feature_images="raw"), features=features)
    both = GeneratorLoss(cfg, features=features)
    out = InpaintOutput(pred=raw)
    comp = raw * mask + image * (1 - mask)
    expect_raw = (raw.mean(1) - image.mean(1)).abs().mean().item()
    expect_comp = (comp.mean(1) - image.mean(1)).abs().mean().item()
    assert float(raw_only(out, image, mask)[1]["g/perceptual"]) == pytest.approx(expect_raw, rel=1e-6)
    assert float(both(out, image, mask)[1]["g/perceptual"]) == pytest.approx(expect_raw + expect_comp, rel=1e-6)


# ------------------------------------------------------------- aux weights vs the model's declared aux terms


def test_aux_weights_and_declared_terms_are_checked_both_ways():
    from inpaintlab import create_model
    from inpaintlab.losses import check_aux_weights

    srpnet = create_model("srpnet_tiny")  # declares {"pyramid": PYRAMID}
    check_aux_weights(srpnet, LossConfig(aux={"pyramid": 0.5}))
    with pytest.raises(InpaintlabError, match="'typo_term'.*srpnet_tiny"):
        check_aux_weights(srpnet, LossConfig(aux={"pyramid": 0.5, "typo_term": 5.0}))
    with pytest.raises(InpaintlabError, match="srpnet_tiny.*'pyramid'.*loss.aux.pyramid"):
        check_aux_weights(srpnet, LossConfig())
    with pytest.raises(InpaintlabError, match="'typo_term'.*lgnet_tiny"):
        check_aux_weights(create_model("lgnet_tiny"), LossConfig(aux={"typo_term": 5.0}))


def test_the_trainer_refuses_a_weight_for_an_aux_term_no_model_returns(tmp_path):
    from inpaintlab.presets import get_preset
    from inpaintlab.train import Trainer

    cfg = get_preset("lgnet_tiny_builtin")
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, aux={"typo_term": 5.0}))
    with pytest.raises(InpaintlabError, match="typo_term"):
        Trainer(cfg, tmp_path / "run")


def test_a_declared_kind_is_enforced_and_undeclared_terms_are_refused():
    image, mask = torch.rand(1, 3, 16, 16), torch.zeros(1, 1, 16, 16)
    mask[..., 4:10, 4:10] = 1
    out = InpaintOutput(pred=torch.rand(1, 3, 16, 16), aux={"extra": torch.tensor(0.3)})
    cfg = LossConfig(aux={"extra": 1.0})
    GeneratorLoss(cfg, aux_terms={"extra": "scalar"})(out, image, mask)
    with pytest.raises(InpaintlabError, match="'extra' it does not declare"):
        GeneratorLoss(cfg, aux_terms={})(out, image, mask)
    with pytest.raises(InpaintlabError, match="declared 'pyramid'"):
        GeneratorLoss(cfg, aux_terms={"extra": "pyramid"})(out, image, mask)


def _tiny_discriminator_generator_batch():
    """A frozen toy D (eval: spectral norm stops iterating), a toy G, and a (2,3,64,64) batch with a square hole."""
    from inpaintlab.models import create_discriminator, create_model

    torch.manual_seed(0)
    d = create_discriminator("lgnet_tiny").requires_grad_(False).eval()
    image = torch.rand(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    return d, create_model("lgnet_tiny"), image, mask


def test_feature_matching_adds_its_weight_times_the_d_feature_distance_and_trains_a_step(tmp_path):
    """loss.feature_matching (pix2pixHD): the total grows by exactly weight x the mean over D's layers of the
    L1 between D's features of the judged composite and of the original; the term is 0 for a perfect fill;
    a discriminator without features is a clear error; a toy model trains a step with it."""
    import dataclasses

    from inpaintlab.config import LossConfig
    from inpaintlab.losses import GeneratorLoss
    from inpaintlab.models import create_discriminator
    from inpaintlab.types import composite

    d, g, image, mask = _tiny_discriminator_generator_batch()
    out = g(image, mask)
    base = LossConfig(hole=6.0, adversarial=0.1, adv_input="final_composite")
    plain, _ = GeneratorLoss(base, d)(out, image, mask)
    total, logs = GeneratorLoss(dataclasses.replace(base, feature_matching=10.0), d)(out, image, mask)
    fake, real = d.features(composite(out.pred, image, mask)), d.features(image)
    expected = sum((f - r).abs().mean() for f, r in zip(fake, real)) / len(fake)
    assert len(fake) == 4 and torch.allclose(logs["g/fm"], expected)
    assert torch.allclose(total, plain + 10.0 * expected)
    perfect = type(out)(pred=image, stages=(image,) * len(out.stages))
    _, logs = GeneratorLoss(dataclasses.replace(base, feature_matching=10.0), d)(perfect, image, mask)
    assert logs["g/fm"].item() == 0.0
    with pytest.raises(InpaintlabError, match="exposes no intermediate features"):
        GeneratorLoss(LossConfig(feature_matching=1.0), create_discriminator("msanet"))(out, image, mask)
    from inpaintlab.presets import PRESETS

    loss = PRESETS["lgnet_tiny_builtin"].loss
    _trains_a_toy_step(tmp_path, "fm", dataclasses.replace(loss, perceptual=0.0, style=0.0, feature_matching=10.0))


def test_adversarial_and_feature_terms_share_one_discriminator_pass_per_judged_image():
    """With the GAN term and feature matching both on, D's encoder runs once per judged image (``judge``) and once
    for the original, not three times, and the terms and the generator's gradient equal the two-pass formulas."""
    from inpaintlab.config import LossConfig
    from inpaintlab.losses import GeneratorLoss, generator_adversarial
    from inpaintlab.types import InpaintDiscriminator, composite

    d, g, image, mask = _tiny_discriminator_generator_batch()
    out = g(image, mask)
    passes = []
    d.encoder[0].register_forward_hook(lambda *_: passes.append(1))  # the first convolution: one per pass
    cfg = LossConfig(valid=0.0, hole=0.0, tv=0.0, adversarial=0.5, feature_matching=3.0, adv_input="final_composite")
    total, logs = GeneratorLoss(cfg, d)(out, image, mask)
    assert len(passes) == 2
    fake = composite(out.pred, image, mask)
    two_pass_logits, two_pass_layers = InpaintDiscriminator.judge(d, fake, mask)  # the contract's default: two passes
    assert len(passes) == 4
    fm = sum((f - r).abs().mean() for f, r in zip(two_pass_layers, d.features(image))) / len(two_pass_layers)
    expected = 0.5 * generator_adversarial("lsgan", two_pass_logits[0]) + 3.0 * fm
    assert torch.allclose(logs["g/adv"], generator_adversarial("lsgan", two_pass_logits[0]))
    assert torch.allclose(logs["g/fm"], fm) and torch.allclose(total, expected)
    grad = torch.autograd.grad(total, out.pred, retain_graph=True)[0]
    assert grad.abs().sum() > 0 and torch.allclose(grad, torch.autograd.grad(expected, out.pred)[0], atol=1e-7)


def _trains_a_toy_step(tmp_path, term: str, loss: LossConfig) -> None:
    """One training step of the toy LGNet recipe with ``loss``: the logged term g/<term> is finite and positive
    and the generator's weights move."""
    from inpaintlab.presets import PRESETS
    from inpaintlab.train import Trainer

    cfg = PRESETS["lgnet_tiny_builtin"]
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, root="synthetic:4", val_count=0),
        masks=dataclasses.replace(cfg.masks, source="box"),
        loss=loss,
        batch_size=2,
    )
    trainer = Trainer(cfg, tmp_path)
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    sample = next(iter(trainer._loader(0, 0)))
    logs = trainer.train_step(sample.image, sample.mask, sample.extras)
    assert torch.isfinite(logs[f"g/{term}"]) and logs[f"g/{term}"] > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.generator.parameters()))


def _adds_weight_times_term(image: Tensor, mask: Tensor, term: str, weight: float, fn) -> None:
    """GeneratorLoss with ``term`` at ``weight`` logs g/<term> = fn(composite, image, mask) (absent when off) and
    its total grows by exactly weight x that."""
    from inpaintlab import create_model
    from inpaintlab.losses import GeneratorLoss
    from inpaintlab.types import composite

    out = create_model("lgnet_tiny")(image, mask)
    base = LossConfig(hole=6.0)
    plain, plain_logs = GeneratorLoss(base)(out, image, mask)
    total, logs = GeneratorLoss(dataclasses.replace(base, **{term: weight}))(out, image, mask)
    expected = fn(composite(out.pred, image, mask), image, mask)
    assert f"g/{term}" not in plain_logs and torch.allclose(logs[f"g/{term}"], expected)
    assert torch.allclose(total, plain + weight * expected)


def test_detail_energy_asks_for_the_photos_texture_energy_and_ignores_the_2_pixel_grid(tmp_path):
    """loss.detail_energy (issue 23): 0 for the original, positive for a flat fill of a textured hole, blind to
    a pattern alternating every pixel (the transposed convolutions' grid), equal for fills of the same energy
    whatever their phase; a gradient step on a flat fill adds texture energy in the hole and leaves the known
    pixels alone; the total grows by exactly weight x term; a toy recipe trains a step with it alone."""

    from inpaintlab.config import LossConfig
    from inpaintlab.losses import detail_energy, detail_energy_loss
    from inpaintlab.types import composite

    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    flat = composite(torch.full_like(image, 0.5), image, mask)
    assert detail_energy_loss(image, image, mask).item() == 0.0
    missing = detail_energy_loss(flat, image, mask)
    assert missing > 0.01
    y, x = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    grid = 0.2 * ((x + y) % 2 - 0.5) + 0.1 * (x % 2 - 0.5)  # zero-mean: no step at the seam
    assert torch.allclose(detail_energy_loss(flat + grid * mask, image, mask), missing)
    shifted = composite(torch.roll(image, shifts=(0, 4), dims=(2, 3)), image, mask)  # a copy of the texture, off phase
    assert detail_energy_loss(shifted, image, mask) < 0.5 * missing
    assert detail_energy(image, 2).shape == (2, 1, 8, 8) and detail_energy(image, 4).shape == (2, 1, 4, 4)

    fill = (torch.full_like(image, 0.5) + 0.01 * torch.randn_like(image)).requires_grad_(True)
    loss = detail_energy_loss(composite(fill, image, mask), image, mask)
    (grad,) = torch.autograd.grad(loss, fill)
    assert grad[(mask.expand_as(grad) == 0)].abs().max() == 0
    stepped = composite(fill.detach() - 0.5 * grad, image, mask)
    before, after = (detail_energy(composite(f, image, mask), 2) for f in (fill.detach(), stepped))
    assert after.mean() > before.mean() and detail_energy_loss(stepped, image, mask) < loss

    _adds_weight_times_term(image, mask, "detail_energy", 4.0, detail_energy_loss)
    _trains_a_toy_step(tmp_path, "detail_energy", LossConfig(valid=0.0, hole=0.0, detail_energy=10.0))


def test_spectrum_asks_for_the_photos_amplitude_spectrum_and_charges_a_grid(tmp_path):
    """loss.spectrum (issue 23): 0 for the original; a flat fill of a textured hole costs more than a blurred one,
    and a shifted copy of a stationary texture (another phase) less than either; unlike ``detail_energy`` a 2-pixel
    grid added to a fill costs; tiles outside the hole do not count; the total grows by exactly weight x term."""
    import torch.nn.functional as F

    from inpaintlab.losses import detail_energy_loss, local_spectrum, spectrum_loss
    from inpaintlab.types import composite

    torch.manual_seed(0)
    image = F.avg_pool2d(torch.rand(2, 3, 132, 132), 5, stride=1)[..., :128, :128]  # stationary, not white
    mask = torch.zeros(2, 1, 128, 128)
    mask[..., 32:96, 32:96] = 1
    flat = composite(torch.full_like(image, 0.5), image, mask)
    blurred = composite(F.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False), image, mask)
    shifted = composite(torch.roll(image, shifts=(0, 32), dims=(2, 3)).flip(-1), image, mask)
    assert spectrum_loss(image, image, mask).item() == 0.0
    assert spectrum_loss(shifted, image, mask) < spectrum_loss(blurred, image, mask) < spectrum_loss(flat, image, mask)
    y, x = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    grid = 0.05 * ((x + y) % 2 - 0.5) * mask
    assert spectrum_loss(blurred + grid, image, mask) > spectrum_loss(blurred, image, mask)
    assert torch.allclose(detail_energy_loss(blurred + grid, image, mask), detail_energy_loss(blurred, image, mask))
    outside = image.clone()
    outside[..., :32, :32] = 0.5  # a tile wholly outside the hole
    assert spectrum_loss(outside, image, mask).item() == 0.0
    assert local_spectrum(image).shape == (2, 16, 32, 17)

    _adds_weight_times_term(image, mask, "spectrum", 2.0, spectrum_loss)
    fill = (0.5 + 0.001 * torch.randn_like(image)).requires_grad_(True)  # a nearly flat fill
    (grad,) = torch.autograd.grad(spectrum_loss(composite(fill, image, mask), image, mask), fill)
    assert torch.isfinite(grad).all() and grad[mask.expand_as(grad) > 0].abs().sum() > 0
    assert grad[mask.expand_as(grad) == 0].abs().max() == 0
    _trains_a_toy_step(tmp_path, "spectrum", LossConfig(valid=0.0, hole=0.0, spectrum=10.0))


def test_feature_style_adds_its_weight_times_the_gram_distance_of_d_features(tmp_path):
    """loss.feature_style (issue 23): the total grows by exactly weight x the mean over D's layers of
    mean |G(D_l(composite)) - G(D_l(original))|, logged as g/fstyle beside g/fm; 0 for a perfect fill;
    it needs a discriminator; the generator gets a gradient from it alone; a toy recipe trains a step."""
    import dataclasses

    from inpaintlab.config import LossConfig
    from inpaintlab.losses import GeneratorLoss, gram_matrix
    from inpaintlab.types import composite

    d, g, image, mask = _tiny_discriminator_generator_batch()
    out = g(image, mask)
    base = LossConfig(hole=6.0, feature_matching=2.0, adv_input="final_composite")
    plain, plain_logs = GeneratorLoss(base, d)(out, image, mask)
    total, logs = GeneratorLoss(dataclasses.replace(base, feature_style=50.0), d)(out, image, mask)
    fake, real = d.features(composite(out.pred, image, mask)), d.features(image)
    expected = sum((gram_matrix(f) - gram_matrix(r)).abs().mean() for f, r in zip(fake, real)) / len(fake)
    assert "g/fstyle" not in plain_logs and expected > 0
    assert torch.allclose(logs["g/fstyle"], expected) and torch.allclose(logs["g/fm"], plain_logs["g/fm"])
    assert torch.allclose(total, plain + 50.0 * expected)
    perfect = type(out)(pred=image, stages=(image,) * len(out.stages))
    _, logs = GeneratorLoss(dataclasses.replace(base, feature_style=50.0), d)(perfect, image, mask)
    assert logs["g/fstyle"].item() == 0.0
    only_style, _ = GeneratorLoss(LossConfig(valid=0.0, hole=0.0, feature_style=1.0), d)(out, image, mask)
    only_style.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
    with pytest.raises(InpaintlabError, match="need a discriminator"):
        GeneratorLoss(LossConfig(feature_style=1.0))(out, image, mask)
    from inpaintlab.presets import PRESETS

    loss = PRESETS["lgnet_tiny_builtin"].loss
    _trains_a_toy_step(tmp_path, "fstyle", dataclasses.replace(loss, perceptual=0.0, style=0.0, feature_style=10.0))


def test_lattice_loss_charges_the_decoders_dots_and_nothing_else(tmp_path):
    """loss.lattice (issue 23): 0 for the original, ~0 for a smooth fill; 2 x 2 dots every 8 pixels in the fill
    cost, more for stronger dots; a gradient step on a dotted fill weakens the dots and leaves the known
    pixels alone; the total grows by exactly weight x term; a toy recipe trains a step with it alone."""
    import torch.nn.functional as F

    from inpaintlab.config import LossConfig
    from inpaintlab.losses import lattice_loss
    from inpaintlab.metrics import lattice_share
    from inpaintlab.types import composite

    torch.manual_seed(0)
    image = F.avg_pool2d(torch.rand(2, 3, 132, 132), 5, stride=1)[..., :128, :128]
    mask = torch.zeros(2, 1, 128, 128)
    mask[..., 24:104, 24:104] = 1
    y, x = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    dots = ((x % 8 < 2) & (y % 8 < 2)).float().expand(2, 3, 128, 128)
    smooth = composite(F.avg_pool2d(image, 9, stride=1, padding=4, count_include_pad=False), image, mask)
    assert lattice_loss(image, image, mask).item() == 0.0
    faint, strong = (lattice_loss(composite(smooth + a * dots, image, mask), image, mask) for a in (0.02, 0.1))
    assert lattice_loss(smooth, image, mask) < 0.01 * faint < faint < strong

    fill = (smooth + 0.1 * dots).requires_grad_(True)
    loss = lattice_loss(composite(fill, image, mask), image, mask)
    (grad,) = torch.autograd.grad(loss, fill)
    assert grad[(mask.expand_as(grad) == 0)].abs().max() == 0
    stepped = composite(fill.detach() - 0.5 * grad / grad.abs().max(), image, mask)
    assert lattice_share(stepped, mask).mean() < lattice_share(composite(fill.detach(), image, mask), mask).mean()

    _adds_weight_times_term(image, mask, "lattice", 4.0, lattice_loss)
    _trains_a_toy_step(tmp_path, "lattice", LossConfig(valid=0.0, hole=0.0, lattice=10.0))
