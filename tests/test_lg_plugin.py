"""LGNet's refinement as a plug-in (LGNet Sec. IV-D, Table VIII): sizes, wiring, pass-through, recipes."""

import copy

import pytest
import torch

from inpaintlab.errors import InpaintlabError
from inpaintlab.models import create_model, list_models
from inpaintlab.models.lg_plugin import BACKBONES, LG_TINY, LGRefined, lg_refine
from inpaintlab.presets import PRESETS
from inpaintlab.train import training_inputs

NET_L, NET_G_ATT = 5_483_203, 55_104_003  # official netG2 / netG3 (implementation-notes 1.2-1.3)


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_every_backbone_has_a_full_and_a_tiny_lg_variant():
    assert list(BACKBONES)[0] == "pennet"  # the paper's PEN_LG row first
    names = set(list_models("*_lg")) | set(list_models("*_lg_tiny"))
    assert names == {f"{b}_lg" for b in BACKBONES} | {f"{b}_lg_tiny" for b in BACKBONES}


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_added_stages_have_lgnets_parameter_counts(backbone):
    with torch.device("meta"):  # no memory and no initialisation cost at full width
        model = create_model(f"{backbone}_lg")
        alone = create_model(backbone)
    assert (_count(model.nets["L"]), _count(model.nets["G_att"])) == (NET_L, NET_G_ATT)
    assert _count(model.backbone) == _count(alone)
    assert _count(model) == _count(alone) + NET_L + NET_G_ATT
    assert model.size_multiple == 256


def test_unet15_plus_lg_is_lgnet():
    """LGNet is the plug-in after its own Net_C: same parameters and, with LGNet's weights, the same outputs."""
    with torch.device("meta"):
        assert _count(lg_refine(create_model("unet15"))) == _count(create_model("lgnet")) == 115_002_185
    torch.manual_seed(0)
    lgnet = create_model("lgnet_tiny").eval()
    plug = lg_refine(create_model("unet15_tiny"), **LG_TINY).eval()
    state = {k.replace("nets.C.", "backbone.nets.C."): v for k, v in lgnet.state_dict().items()}
    plug.load_state_dict(state)
    image, mask = torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)
    mask[0, :, 10:40, 20:50] = mask[1, :, 30:60, 5:25] = 1
    with torch.no_grad():
        a, b = lgnet(image, mask), plug(image, mask)
    assert len(b.stages) == len(a.stages) == 2
    for x, y in zip(a.outputs, b.outputs):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5)


def test_stages_are_the_backbone_then_local_wired_as_in_lgnet(two_hole_batch):
    torch.manual_seed(0)
    model = create_model("pennet_lg_tiny").eval()
    image, mask, g = two_hole_batch()
    seen = {}
    model.nets["L"].register_forward_hook(lambda m, inputs, out: seen.update(local_in=inputs[0], local_out=out))
    model.nets["G_att"].register_forward_hook(lambda m, inputs, out: seen.update(global_in=inputs[0]))
    with torch.no_grad():
        out = model(image, mask)
        alone = model.backbone(image, mask)
        noisy = model(image + mask * torch.rand(image.shape, generator=g), mask)
    first, local = out.stages
    torch.testing.assert_close(first, alone.pred)
    for got, want in zip(out.aux["pyramid"], alone.aux["pyramid"]):  # PEN-Net's pyramid passes through
        torch.testing.assert_close(got, want)
    known = image * 2 - 1
    torch.testing.assert_close(seen["local_in"], torch.cat([known * (1 - mask) + (first * 2 - 1) * mask, mask], 1))
    torch.testing.assert_close(local, (seen["local_out"] + 1) / 2)
    torch.testing.assert_close(seen["global_in"], torch.cat([known * (1 - mask) + (local * 2 - 1) * mask, mask], 1))
    torch.testing.assert_close(noisy.pred, out.pred, rtol=0, atol=1e-6)


def test_cstfnet_backbone_keeps_its_stages_second_mask_and_aux(two_hole_batch):
    torch.manual_seed(0)
    model = create_model("cstfnet_lg_tiny")
    assert training_inputs(model) == ("mask2",) and training_inputs(create_model("pennet_lg_tiny")) == ()
    image, mask, _ = two_hole_batch()
    out = model(image, mask, mask2=mask.flip(0))
    assert len(out.stages) == 3 and set(out.aux) == {"contrastive", "feature_l2"}  # coarse, CSTFNet, local
    with pytest.raises(InpaintlabError, match=r"takes the extra inputs \['mask2'\], got 'target'"):
        model(image, mask, target=image)  # only what the backbone declares is passed on


def test_param_groups_backward_and_deep_copy(two_hole_batch):
    torch.manual_seed(0)
    model = create_model("pennet_lg_tiny")
    groups = model.param_groups()
    assert list(groups) == ["G1", "G2", "G3"]
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    image, mask, _ = two_hole_batch()
    out = model(image, mask)
    (sum(t.mean() for t in out.outputs) + sum(p.mean() for p in out.aux["pyramid"])).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    twin = copy.deepcopy(model).eval()  # EMA copies
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(twin(image, mask).pred, model(image, mask).pred)


def test_options_reach_the_right_network_and_errors_are_clear():
    model = create_model("pennet_lg_tiny", cnum=4, ngf_local=4)
    assert model.backbone.final[1].in_channels == 4 and model.nets["L"].model[0].out_channels == 4
    assert isinstance(model, LGRefined) and model.model_kwargs == {"cnum": 4, "ngf_local": 4}
    with pytest.raises(InpaintlabError, match="no option 'nope'"):
        create_model("msanet_lg_tiny", nope=1)
    with pytest.raises(InpaintlabError, match="no option 'bogus'"):
        lg_refine(create_model("pennet_tiny"), bogus=1)
    with pytest.raises(InpaintlabError, match="multiples of 64"):
        create_model("pennet_lg_tiny")(torch.rand(1, 3, 96, 64), torch.zeros(1, 1, 96, 64))
    with pytest.raises(InpaintlabError, match="classical"):
        lg_refine(create_model("telea"))


def test_lg_presets_are_the_backbone_recipe_plus_lgnets_terms():
    pen, pen_lg = PRESETS["pennet_places2"], PRESETS["pennet_lg_places2"]
    assert (pen_lg.model.name, pen_lg.model.discriminator) == ("pennet_lg", "pennet")
    assert (pen_lg.optim, pen_lg.data, pen_lg.masks, pen_lg.batch_size, pen_lg.max_steps) == (
        pen.optim,
        pen.data,
        pen.masks,
        pen.batch_size,
        pen.max_steps,
    )
    loss = pen_lg.loss  # PEN-Net's terms ...
    assert (loss.hole, loss.valid, loss.aux, loss.gan_mode, loss.adversarial) == (6, 1, {"pyramid": 0.5}, "hinge", 0.1)
    assert (loss.pixel_norm, loss.pixel_range) == ("region", "minus1_1")
    # ... plus LGNet's on stages 2 and 3 (notes 1.7), D on the first stage's composite (LGNet and PEN-Net alike)
    assert (loss.perceptual, loss.style, loss.tv, loss.feature_outputs) == (0.05, 120, 0.1, (1, 2))
    assert (loss.vgg_input, loss.vgg_layers, loss.tv_region, loss.adv_input) == (
        "minus1_1",
        ("pool1", "pool2", "pool3"),
        "hole",
        "first_composite",
    )
    msa, msa_lg = PRESETS["msanet_psv"], PRESETS["msanet_lg_psv"]
    assert msa_lg.model.name == "msanet_lg" and msa_lg.optim == msa.optim and msa_lg.masks == msa.masks
    assert msa_lg.loss.feature_outputs == (0, 1, 2) and msa_lg.loss.pixel_norm == "all_pixels"
    assert (msa.loss.adv_input, msa_lg.loss.adv_input) == ("final_raw", "first_raw")  # D judges MSA-Net's raw output
    assert {"pennet_lg_tiny_builtin", "msanet_lg_tiny_builtin"} <= set(PRESETS)
