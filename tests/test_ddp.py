"""DDP on two CPU processes (gloo): gradients are averaged, ranks stay identical, rank 0 checkpoints.

Two ranks with batch 2 each must match one process with batch 4 (the union batch: the epoch's
permutation is cut into global batches, rank r takes the r-th slice of each). The model has no
BatchNorm and no dropout, so the only difference is float summation order.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from toys import PatchD

from inpaintlab.checkpoint import load_checkpoint
from inpaintlab.config import DataConfig, LossConfig, MaskConfig, ModelConfig, OptimConfig, TrainConfig
from inpaintlab.models import is_model, register_discriminator, register_model
from inpaintlab.train import Trainer
from inpaintlab.types import InpaintModel, InpaintOutput, masked_input


class _Refine(InpaintModel):
    size_multiple = 1

    def __init__(self, width: int = 8):
        super().__init__()
        self.coarse = nn.Sequential(nn.Conv2d(4, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1))
        self.fine = nn.Sequential(nn.Conv2d(4, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, image, mask):
        x = masked_input(image, mask)
        coarse = torch.sigmoid(self.coarse(torch.cat([x, mask], 1)))
        fine = torch.sigmoid(self.fine(torch.cat([x + coarse * mask, mask], 1)))
        return InpaintOutput(pred=fine, stages=(coarse,))

    def param_groups(self):
        return {"G1": list(self.coarse.parameters()), "G2": list(self.fine.parameters())}


if not is_model("_ddp_refine"):

    @register_model
    def _ddp_refine(width: int = 8) -> nn.Module:
        return _Refine(width)

    @register_discriminator
    def _ddp_patch_d(ndf: int = 8) -> nn.Module:
        return PatchD(ndf)


def _config(batch_size: int) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(name="_ddp_refine", discriminator="_ddp_patch_d"),
        data=DataConfig(root="synthetic:8", size=32, flip=True, val_count=4),
        masks=MaskConfig(source="box", val_source="box"),
        loss=LossConfig(hole=6.0, tv=0.1, adversarial=0.1, feature_outputs=(1,)),
        optim=OptimConfig(lr=1e-3, schedule="constant", epochs_constant=1),
        batch_size=batch_size,
        max_steps=2,
        ema_decay=0.5,
        log_every=1,
        image_every=0,
        val_every=2,
        ckpt_every=0,
    )


def _grads(trainer: Trainer) -> dict[str, torch.Tensor]:
    named = {f"g.{k}": p for k, p in trainer.generator.named_parameters()}
    named.update({f"d.{k}": p for k, p in trainer.discriminator.named_parameters()})
    return {k: p.grad.detach().clone() for k, p in named.items()}


def _first_step(trainer: Trainer) -> dict[str, torch.Tensor]:
    sample = next(iter(trainer._loader(0, 0)))
    trainer.train_step(sample.image, sample.mask)
    return _grads(trainer)


def _worker(rank: int, init_file: str, out_dir: str, result_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        trainer = Trainer(_config(batch_size=2), out_dir)
        grads = _first_step(trainer)
        logs = trainer.fit()  # continues with batch 1, validates (sharded) and checkpoints at step 2
        weights = {k: v.detach().clone() for k, v in trainer.generator.state_dict().items()}
        gathered = [None, None]
        dist.all_gather_object(gathered, weights)
        if rank == 0:
            result = {"grads": grads, "weights": weights, "other": gathered[1], "logs": logs}
            torch.save(result, os.path.join(result_dir, "rank0.pt"))
        dist.barrier()  # leave together (see train.run_training)
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_one_process_on_the_union_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path / "ddp"), str(tmp_path)), nprocs=2, join=True)
    result = torch.load(tmp_path / "rank0.pt", weights_only=True)

    single = Trainer(_config(batch_size=4), tmp_path / "single")
    single_grads = _first_step(single)
    logs = single.fit()

    for key, grad in single_grads.items():  # DDP averaged the two half-batch gradients
        assert torch.allclose(result["grads"][key], grad, rtol=1e-4, atol=1e-6), key
    for key, value in single.generator.state_dict().items():
        assert torch.equal(result["weights"][key], result["other"][key]), key  # ranks identical
        assert torch.allclose(result["weights"][key], value, rtol=1e-4, atol=1e-5), key
    # validation was sharded over ranks and gathered: same metrics as one process on all 4 images
    assert result["logs"]["val/psnr"] == pytest.approx(logs["val/psnr"], rel=1e-4)
    # rank 0 wrote the checkpoint, with both ranks' RNG states
    tensors, header = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "step_00000002.safetensors")
    assert header["world_size"] == 2 and {"rng.0.torch", "rng.1.torch"} <= set(tensors)
    assert (tmp_path / "ddp" / "metrics.jsonl").read_text().count('"step": 2') >= 1
