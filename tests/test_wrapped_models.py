"""A compiled or wrapped generator keeps its extra training inputs and trains like the plain one."""

import dataclasses

import torch
from torch import nn

from inpaintlab import create_model
from inpaintlab.data import collate_samples
from inpaintlab.presets import get_preset
from inpaintlab.train import Trainer, training_inputs


def test_training_inputs_look_through_compile():
    cases = (("cstfnet_tiny", {}, ("mask2",)), ("unet_cicm_tiny", {"ratio_target": "difference"}, ("target",)),
             ("unet_cicm_tiny", {}, ()), ("lgnet_tiny", {}, ()))
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
        losses.append([trainer.train_step(batch.image, batch.mask, batch.mask2) for _ in range(2)])
    for plain, wrapped in zip(*losses):
        assert plain.keys() == wrapped.keys() and any("con" in key for key in plain)  # the siamese terms ran
        for key in plain:
            assert torch.equal(plain[key], wrapped[key]), key
