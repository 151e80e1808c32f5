"""Every registered generator honours the DESIGN.md contract (timm-style test over the registry)."""

import pytest
import torch

from inpaintlab import create_model, list_models
from inpaintlab.types import InpaintOutput

MODELS = [m for m in list_models() if not m.startswith("_")]


def _inputs(model, seed=0):
    size = max(getattr(model, "size_multiple", 1), 64)
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=g)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4 : size // 2, size // 3 : 3 * size // 4] = 1
    return image, mask, g


def _perturb_weights(model, seed=0):
    """Add seeded noise (half of each tensor's spread) to every weight: an untrained model's output can be
    so flat that a leak of hole pixels moves it by 1e-8; perturbed, every model answers its input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and p.numel() > 1:
                p.add_(torch.randn(p.shape, generator=g) * 0.5 * p.std().clamp_min(0.02))
    return model


@pytest.mark.parametrize("name", MODELS)
def test_contract(name):
    torch.manual_seed(0)
    model = _perturb_weights(create_model(name).eval())
    image, mask, g = _inputs(model)
    with torch.no_grad():
        out = model(image, mask)
        noisy = image + mask * torch.rand(image.shape, generator=g)  # garbage inside the hole only
        out_noisy = model(noisy, mask)
        context = image + (1 - mask) * 0.1 * torch.rand(image.shape, generator=g)  # the control: known pixels
        out_context = model(context, mask)
    assert isinstance(out, InpaintOutput)
    for t in out.outputs:
        assert t.shape == image.shape and t.dtype == image.dtype
        assert torch.isfinite(t).all()
    assert out.pred.min() >= -1e-6 and out.pred.max() <= 1 + 1e-6, "pred must be in [0,1]"
    # The first thing a generator does is zero the hole: noise in the hole cannot change anything. Measured
    # against the control, so a nearly flat output (PEN-Net's moves by 4e-6) cannot hide a leak: a 10x
    # weaker change of known pixels must move the fill 1e5x more than hole noise does (measured: 0 exactly).
    context_change = ((out_context.pred - out.pred) * mask).abs().max().item()
    hole_change = (out_noisy.pred - out.pred).abs().max().item()
    assert context_change > 1e-6, context_change
    assert hole_change <= 1e-5 * context_change, (hole_change, context_change)


# ---------------------------------------------------------------------------------- the declared contract
# Every registered generator declares size_multiple, trainable, exportable, training_inputs, aux_terms and
# param_groups() (inpaintlab.types.InpaintModel). The tiny variants (and the classical fills) check each
# declaration against what the model does in a training step.

import copy  # noqa: E402

from inpaintlab import InpaintlabError  # noqa: E402
from inpaintlab.data import TRAINING_INPUTS  # noqa: E402
from inpaintlab.types import AUX_KINDS, PYRAMID, InpaintModel, ModelSpec  # noqa: E402

SMALL = [m for m in MODELS if m.endswith("_tiny") or m in ("telea", "navier_stokes")]


def _box(size: int, top: int, left: int, batch: int = 2) -> torch.Tensor:
    mask = torch.zeros(batch, 1, size, size)
    mask[..., top : top + size // 3, left : left + size // 3] = 1
    return mask


def _training_call(model, image, mask, extras):
    """A deep copy of ``model`` in training mode on the batch: (copy, output) with a fixed seed."""
    model = copy.deepcopy(model).train()
    torch.manual_seed(1)
    return model, model(image, mask, **extras)


@pytest.mark.parametrize("name", MODELS)
def test_every_registered_model_declares_its_contract(name):
    with torch.device("meta"):  # declarations only: no weights are initialised
        model = create_model(name)
    assert isinstance(model, InpaintModel) and model.spec == ModelSpec(name, {}) and model.model_name == name
    assert isinstance(model.size_multiple, int) and model.size_multiple >= 1
    assert isinstance(model.training_inputs, frozenset) and model.training_inputs <= TRAINING_INPUTS
    assert set(model.aux_terms.values()) <= set(AUX_KINDS)
    assert model.exportable <= model.trainable  # only the classical fills have no graph to export
    groups = model.param_groups()
    assert sorted(id(p) for ps in groups.values() for p in ps) == sorted(id(p) for p in model.parameters())


@pytest.mark.parametrize("name", SMALL)
def test_declared_contract_matches_a_training_step(name):
    torch.manual_seed(0)
    model = create_model(name)
    size = max(model.size_multiple, 64)
    image = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    mask = _box(size, size // 4, size // 3)
    if model.size_multiple > 1:  # size_multiple holds: a side off the multiple is refused clearly
        odd = size + model.size_multiple // 2
        with pytest.raises(InpaintlabError), torch.no_grad():
            model.eval()(torch.rand(1, 3, odd, odd), torch.zeros(1, 1, odd, odd))
    if not model.trainable:
        assert not list(model.parameters()) and not model.training_inputs and not model.aux_terms
        return
    extras = {"mask2": _box(size, size // 2, size // 6), "target": image}
    extras = {key: extras[key] for key in model.training_inputs}
    trained, out = _training_call(model, image, mask, extras)
    assert set(out.aux) == set(model.aux_terms), "declared aux terms must be exactly those returned in training"
    loss = sum(o.mean() for o in out.outputs)
    for term, kind in model.aux_terms.items():
        value = out.aux[term]
        if kind == PYRAMID:
            assert isinstance(value, tuple) and all(v.shape[:2] == (2, 3) for v in value)
            loss = loss + sum(v.mean() for v in value)
        else:
            assert isinstance(value, torch.Tensor) and value.numel() == 1
            loss = loss + value.reshape(())
    loss.backward()
    starved = [n for n, p in trained.named_parameters() if p.requires_grad and p.grad is None]
    assert not starved, f"{name}: parameters without a gradient in a training step: {starved[:5]}"
    # Declared inputs are used: changing one changes what the model returns.
    changed = {"mask2": _box(size, 0, 0), "target": torch.rand(image.shape, generator=torch.Generator().manual_seed(5))}
    for key in model.training_inputs:
        _, again = _training_call(model, image, mask, extras)
        _, other = _training_call(model, image, mask, {**extras, key: changed[key]})
        same = lambda a, b: all(torch.equal(a.aux[k], b.aux[k]) for k in a.aux) and torch.equal(a.pred, b.pred)  # noqa: E731
        assert same(out, again), f"{name}: a training step is not repeatable"
        assert not same(out, other), f"{name} declares {key!r} but does not use it"


@pytest.mark.parametrize("name", MODELS)
def test_the_registry_checks_the_options_of_every_model(name):
    with pytest.raises(InpaintlabError, match="has no option 'no_such_option'"):
        create_model(name, no_such_option=1)  # checked before anything is built


def test_the_registry_checks_the_options_of_every_discriminator():
    from inpaintlab.models import create_discriminator, list_discriminators

    for name in list_discriminators():
        with pytest.raises(InpaintlabError, match=f"discriminator '{name}' has no option 'no_such_option'"):
            create_discriminator(name, no_such_option=1)
