"""Losses: functional terms against independent numpy computations, and GeneratorLoss wiring."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from inpaintlab import InpaintlabError
from inpaintlab.config import LossConfig
from inpaintlab.losses import (
    DiscriminatorLoss,
    GeneratorLoss,
    discriminator_adversarial,
    generator_adversarial,
    gram_matrix,
    masked_l1,
    perceptual_loss,
    scale_for_vgg,
    style_loss,
    total_variation,
)
from inpaintlab.types import InpaintOutput


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


class _PatchD(nn.Module):
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


@pytest.mark.parametrize("adv_input,grad_index", [("first_composite", 0), ("final_composite", 2), ("final_raw", 2)])
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
    with pytest.raises(InpaintlabError, match="needs a discriminator"):
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
