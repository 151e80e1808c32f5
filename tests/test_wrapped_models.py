"""A compiled or wrapped generator keeps its extra training inputs and trains like the plain one."""

import dataclasses

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from inpaintlab import create_model
from inpaintlab.data import collate_samples
from inpaintlab.presets import get_preset
from inpaintlab.train import Trainer, training_inputs


def test_training_inputs_look_through_compile():
    cases = (
        ("cstfnet_tiny", {}, ("mask2",)),
        ("unet_cicm_tiny", {"ratio_target": "difference"}, ("target",)),
        ("unet_cicm_tiny", {}, ()),
        ("lgnet_tiny", {}, ()),
    )
    for name, kwargs, expected in cases:
        model = create_model(name, **kwargs)
        assert training_inputs(model) == expected
        assert training_inputs(torch.compile(model)) == expected  # compiled lazily: no compile cost here


class _Wrapper(nn.Module):
    """What a user's wrapper looks like: forwards everything to the model it holds."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs)


def test_a_wrapped_cstfnet_trains_exactly_like_the_plain_one(tmp_path):
    base = get_preset("cstfnet_tiny_builtin")
    cfg = dataclasses.replace(base, batch_size=2, data=dataclasses.replace(base.data, val_count=0))
    losses = []
    for wrap in (False, True):
        trainer = Trainer(cfg, tmp_path / str(wrap))
        assert trainer.extra_inputs == ("mask2",)
        if wrap:
            trainer.g_train = _Wrapper(trainer.generator)
        batch = collate_samples([trainer.train_set[i] for i in range(2)])
        losses.append([trainer.train_step(batch.image, batch.mask, batch.extras) for _ in range(2)])
    for plain, wrapped in zip(*losses):
        assert plain.keys() == wrapped.keys() and any("con" in key for key in plain)  # the siamese terms ran
        for key in plain:
            assert torch.equal(plain[key], wrapped[key]), key


@pytest.mark.parametrize(
    "preset,kwargs,inputs,term",
    [
        ("unet_cicm_tiny_builtin", {"ratio_target": "difference"}, ("target",), "g/aux/ratio"),
        ("cstfnet_tiny_builtin", {}, ("mask2",), "g/aux/contrastive"),
    ],
)
def test_a_compiled_generator_trains_exactly_like_the_plain_one(tmp_path, preset, kwargs, inputs, term):
    """``torch.compile`` (dynamo tracing, run by the eager backend so CI needs no C++ compiler) changes
    neither the extra inputs the trainer passes nor the losses and updates of two training steps."""
    base = get_preset(preset)
    cfg = dataclasses.replace(
        base,
        batch_size=2,
        data=dataclasses.replace(base.data, val_count=0),
        model=dataclasses.replace(base.model, kwargs={**base.model.kwargs, **kwargs}),
    )
    runs = []
    for compiled in (False, True):
        torch._dynamo.reset()
        counters["frames"].clear()
        trainer = Trainer(cfg, tmp_path / str(compiled))
        assert trainer.extra_inputs == inputs
        if compiled:
            trainer.g_train = torch.compile(trainer.generator, backend="eager")
        batch = collate_samples([trainer.train_set[i] for i in range(2)])
        losses = [trainer.train_step(batch.image, batch.mask, batch.extras) for _ in range(2)]
        assert (counters["frames"]["ok"] > 0) == compiled  # the compiled run really went through dynamo
        runs.append((losses, [p.detach().clone() for p in trainer.generator.parameters()]))
    (plain, plain_weights), (compiled, compiled_weights) = runs
    for a, b in zip(plain, compiled):
        assert a.keys() == b.keys() and term in a  # the term that needs the extra input ran
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    for a, b in zip(plain_weights, compiled_weights):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
