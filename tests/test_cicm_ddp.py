"""CICM under DDP (two CPU processes, gloo): every rank applies the update of the global batch.

Each rank sees different data. After a few training-mode forward passes of ``unet_cicm_tiny`` (not
wrapped in DDP, whose buffer broadcast would hide a missing synchronisation) the memory buffers are
bit-identical on both ranks, and the memory layer fed each rank's half of a batch equals one process
fed the whole batch.
"""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from inpaintlab.layers.memory import CrossImageMemory
from inpaintlab.models import create_model


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)  # same weights and memory on both ranks, as DDP's initial broadcast gives
        model = create_model("unet_cicm_tiny").train()
        unsynced = create_model("unet_cicm_tiny", sync_distributed=False).train()
        g = torch.Generator().manual_seed(100 + rank)  # different data per rank
        for _ in range(3):
            image = torch.rand(2, 3, 64, 64, generator=g)
            mask = (torch.rand(2, 1, 8, 8, generator=g) > 0.7).float().repeat_interleave(8, 2).repeat_interleave(8, 3)
            out = model(image, mask, target=image)
            sum(out.aux.values()).backward()
            with torch.no_grad():
                unsynced(image, mask)
        feats = torch.randn(2, 10, 6, generator=torch.Generator().manual_seed(7))
        memory = CrossImageMemory(6, sets=3, set_size=4, memory_seed=3)
        memory.generalise(feats[rank])
        torch.save(
            {
                "memory": {k: v.clone() for k, v in model.cicm.memory.state_dict().items()},
                "unsynced": {k: v.clone() for k, v in unsynced.cicm.memory.state_dict().items()},
                "layer": {k: v.clone() for k, v in memory.state_dict().items()},
                "feats": feats,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
        dist.barrier()  # leave together (see train.run_training)
    finally:
        dist.destroy_process_group()


def test_memory_stays_identical_across_gloo_ranks(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for key in ("features", "anchors"):
        assert torch.equal(ranks[0]["memory"][key], ranks[1]["memory"][key])
        assert not torch.equal(ranks[0]["unsynced"][key], ranks[1]["unsynced"][key])  # the data did differ
    single = CrossImageMemory(6, sets=3, set_size=4, memory_seed=3)
    single.generalise(ranks[0]["feats"].reshape(20, 6))
    for key in ("features", "anchors"):
        torch.testing.assert_close(ranks[0]["layer"][key], single.state_dict()[key], rtol=1e-5, atol=1e-6)
