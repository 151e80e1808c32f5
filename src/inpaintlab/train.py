"""Training engine: D step then G step, AMP, EMA, DDP (torchrun), checkpoints with exact resume.

    trainer = Trainer(get_preset("lgnet_tiny_builtin"), "runs/tiny", device="cpu")
    trainer.fit()

One iteration: G forward; D step on the detached fake (``DiscriminatorLoss``); G step with the updated
D (``GeneratorLoss``); LR schedulers; EMA. Extra generator inputs are the model's declared
``training_inputs`` (never its name or signature): the dataset makes them (``data.EXTRA_INPUTS``: ``mask2``,
a second independent mask for CSTFNet's siamese pair; ``target``, the ground truth for CICM's ratio) and
the trainer passes ``Sample.extras`` on by name, so a new kind of input never touches this file.
Data order is a pure function of (seed, epoch): the epoch's permutation is cut into global batches of
``batch_size * world_size`` images and rank r takes the r-th slice of each, so DDP on W ranks sees the
same images per step as one process with W times the batch.
A checkpoint holds G, EMA, D, optimisers, schedulers, AMP scaler, every rank's RNG states and the data
position (epoch, batch index), so ``resume`` continues the same trajectory bit for bit.
The run folder belongs to one run; ``resume="auto"`` takes the newest checkpoint that verifies and logs are
cut back to the resumed step (``run_folder.py``). Undecodable images (``data.skip_bad``) are reported once
each and counted in ``summary.json``.
"""

from __future__ import annotations

import copy
import math
import random
import time
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from . import distributed
from .checkpoint import (
    load_checkpoint,
    load_optimizer_parts,
    optimizer_parts,
    rng_state,
    save_checkpoint,
    set_rng_state,
    sub_state,
)
from .config import TrainConfig, to_dict
from .data import TRAINING_INPUTS, collate_samples, worker_errors_in_one_line
from .errors import InpaintlabError
from .losses import DiscriminatorLoss, GeneratorLoss, check_aux_weights
from .models import create_discriminator, create_model
from .report import image_grid, strict_json
from .run_folder import choose_start, finish, lock_run_folder, prepare, report_skipped_images
from .state_dict import load_weights
from .types import composite, contract_of

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def training_inputs(model: nn.Module) -> tuple[str, ...]:
    """The extra training inputs the generator declares (``InpaintModel.training_inputs``), sorted.

    A ``torch.compile``d or DDP-wrapped generator is looked through to the model it wraps.
    """
    return tuple(sorted(contract_of(model).training_inputs))


class Trainer:
    """Trains ``cfg.model`` on ``cfg.data`` (single process, or DDP when launched by torchrun).

    out_dir: run folder. device: "cpu", "cuda" (DDP: cuda:LOCAL_RANK). resume: a checkpoint path, "auto"
    (newest checkpoint in ``out_dir/checkpoints`` that verifies, else start fresh) or None (``out_dir`` must
    not hold a run, unless ``overwrite`` moves it aside).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: str | Path,
        device: str = "cpu",
        resume: str | Path | None = None,
        overwrite: bool = False,
    ):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InpaintlabError("--device cuda was requested but no CUDA GPU is visible; use --device cpu")
        self.cfg, self.out = cfg, Path(out_dir)
        self.rank, self.world, local_rank = distributed.join(device)
        self.is_main = self.rank == 0
        self._lock = lock_run_folder(self.out) if self.is_main else None  # one run per folder, for its life
        self.start = choose_start(self.out, resume, overwrite, self.is_main)  # fails before anything is built
        if self.start.get("replaced"):  # --overwrite moved the old run (and its lock file) aside
            self._lock = lock_run_folder(self.out)
        resume = self.start.get("from")
        self.device = torch.device("cuda", local_rank) if device == "cuda" else torch.device(device)  # "cuda:1" kept
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        torch.manual_seed(cfg.seed)  # identical initialisation on every rank
        self.generator = create_model(cfg.model.name, **cfg.model.kwargs).to(self.device)
        contract = contract_of(self.generator)
        if not contract.trainable or not any(p.requires_grad for p in self.generator.parameters()):
            raise InpaintlabError(f"model {cfg.model.name!r} has no trainable parameters; pick a network model")
        unknown = sorted(contract.training_inputs - TRAINING_INPUTS)
        if unknown:
            raise InpaintlabError(
                f"model {cfg.model.name!r} declares training input {unknown[0]!r}; the data path makes "
                f"only {', '.join(sorted(TRAINING_INPUTS))} (data.EXTRA_INPUTS)"
            )
        check_aux_weights(contract, cfg.loss)  # both directions: a weight per declared term, a term per weight
        self.extra_inputs, self.discriminator = training_inputs(contract), None
        if cfg.model.discriminator:
            self.discriminator = create_discriminator(cfg.model.discriminator, **cfg.model.discriminator_kwargs).to(self.device)
        self.init_sha256: str | None = None  # SHA-256 of the weights file init_from named (the ledger's start)
        if cfg.init_from and not resume:  # fine-tuning: weights from a checkpoint, fresh optimisers, step 0
            self.init_sha256 = self._init_weights(cfg.init_from)
        self.ema = copy.deepcopy(self.generator).requires_grad_(False) if cfg.ema_decay else None
        self.g_loss = GeneratorLoss(cfg.loss, self.discriminator, aux_terms=contract.aux_terms).to(
            self.device
        )  # G step: plain D, frozen
        self.d_loss = DiscriminatorLoss(cfg.loss)
        ids = [self.device.index] if self.device.type == "cuda" else None
        wrap = lambda m: m if self.world == 1 or m is None else DistributedDataParallel(m, device_ids=ids)  # noqa: E731
        self.g_train, self.d_train = wrap(self.generator), wrap(self.discriminator)  # what the D/G steps call
        self._build_data()
        self._build_optimizers()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.step = self.epoch = self.batch_index = 0
        self.degenerate_masks = {"no hole": 0, "all hole": 0}  # training masks that teach nothing (counted)
        self.last_checkpoint: Path | None = None
        self._tb = None  # TensorBoard writer, rank 0 inside fit()
        for seed_rng in (random.seed, np.random.seed, torch.manual_seed):
            seed_rng(cfg.seed + self.rank)
        if resume:
            self.load(resume)

    def _init_weights(self, source: str) -> str:
        """Start from ``source``: "pretrained:NAME" (NAME's shipped G weights, exactly as shipped, fp16 ->
        fp32; D fresh) or a checkpoint file (its G and, when present, D weights). Returns the SHA-256 of the
        file the weights came from (checkpoints record it: "pretrained:NAME" names a file that changes)."""
        from .pretrained import WEIGHTS_DIR, file_sha256, load_pretrained_weights, model_card

        if source.startswith("pretrained:"):
            name = source.removeprefix("pretrained:")
            if name != self.cfg.model.name:
                raise InpaintlabError(f"init_from={source!r} holds {name} weights; this run trains {self.cfg.model.name!r}")
            card = model_card(name)
            if self.cfg.model.kwargs == card["model"]["kwargs"]:
                load_pretrained_weights(self.generator, name)
            else:  # other options (e.g. LGNet's resize-conv upsampling): the model maps the shipped weights
                self.generator.adopt_weights(create_model(name, pretrained=True))
            self.generator.checkpoint_header = None  # the run's checkpoints carry their own header
            self.generator.train()
            # loading checked the file against the card's hash; hash it here only for a card without one
            return card.get("weights", {}).get("sha256") or file_sha256(WEIGHTS_DIR / f"{name}.safetensors")
        tensors, _ = load_checkpoint(source)
        for prefix, module in (("generator", self.generator), ("discriminator", self.discriminator)):
            if module is not None and sub_state(tensors, prefix):
                load_weights(module, sub_state(tensors, prefix), f"{source}: {prefix} weights", self.cfg.model.name)
        return file_sha256(source)

    def _build_data(self) -> None:
        from .data import build_dataset
        from .masks import build_mask_source

        cfg, d = self.cfg, self.cfg.data
        if not d.root:
            raise InpaintlabError("data.root is not set: pass --set data.root=/path/to/training/images")
        common = dict(size=d.size, preprocess=d.preprocess, skip_bad=d.skip_bad)
        masks = build_mask_source(
            cfg.masks.source, d.size, margin=cfg.masks.margin, rotate90=cfg.masks.rotate90, drawn_size=cfg.masks.drawn_size
        )
        self.train_set = build_dataset(
            d.root,
            split="train",
            flip=d.flip,
            color_jitter=d.color_jitter,
            smooth_share=d.smooth_share,
            mask_source=masks,
            seed=cfg.seed,
            extra_inputs=self.extra_inputs,
            **common,
        )
        self.steps_per_epoch = len(self.train_set) // (cfg.batch_size * self.world)  # data.py rejects empty folders
        if self.steps_per_epoch == 0:
            raise InpaintlabError(
                f"batch_size {cfg.batch_size} x {self.world} process(es) is larger than the dataset "
                f"({len(self.train_set)} images in {d.root}); lower batch_size or add images"
            )
        epochs = cfg.epochs if cfg.epochs is not None else cfg.optim.epochs_constant + cfg.optim.epochs_decay
        self.total_steps = min(epochs * self.steps_per_epoch, cfg.max_steps if cfg.max_steps is not None else math.inf)
        self.val_set = None
        if d.val_count > 0:  # val_root None: the "test" split of root (builtin/synthetic: disjoint images)
            val_masks = build_mask_source(cfg.masks.val_source, d.size, margin=cfg.masks.margin)
            split = "train" if d.val_root else "test"
            val_root, val_seed = d.val_root or d.root, cfg.seed + 1
            # builtin/synthetic roots have a disjoint test split; a folder or list does not: say so, loudly,
            # and log those numbers as val_train/* so no curve passes them off as held-out
            self.val_prefix = "val/" if d.val_root or d.root.split(":")[0] in ("builtin", "synthetic") else "val_train/"
            if self.val_prefix == "val_train/" and self.is_main:
                warnings.warn(
                    f"data.val_root is not set: validation runs on training images of {d.root} and is logged as "
                    "val_train/* (it measures fit, not generalisation); set data.val_root to held-out images",
                    stacklevel=2,
                )
            self.val_set = build_dataset(val_root, split=split, flip=False, mask_source=val_masks, seed=val_seed, **common)
            self.val_set.set_epoch(0)

    def _build_optimizers(self) -> None:
        """One optimiser per generator ``param_groups()`` entry (or one for all) + one for D, each with LambdaLR."""
        o = self.cfg.optim
        opt_class = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        groups = contract_of(self.generator).param_groups()
        groups = {name: [p for p in params if p.requires_grad] for name, params in groups.items()}
        trainable = [p for p in self.generator.parameters() if p.requires_grad]
        if sorted(id(p) for ps in groups.values() for p in ps) != sorted(map(id, trainable)):
            raise ValueError(f"{self.cfg.model.name}.param_groups() must cover every trainable parameter exactly once")
        if not o.separate_optimizers:
            groups = {"generator": [p for params in groups.values() for p in params]}
        if self.discriminator is not None:
            groups["discriminator"] = list(self.discriminator.parameters())
        d_lr = o.d_lr if o.d_lr is not None else o.lr * o.d_lr_scale
        lrs = {name: d_lr if name == "discriminator" else o.lr for name in groups}
        extra = dict(betas=o.betas, weight_decay=o.weight_decay)
        self.optimizers = {name: opt_class(params, lrs[name], **extra) for name, params in groups.items()}
        self.g_optimizer_names = [name for name in self.optimizers if name != "discriminator"]
        schedule = lambda step: o.lr_factor(step / self.steps_per_epoch)  # noqa: E731
        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, schedule) for name, opt in self.optimizers.items()}

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        """Batches of this rank for ``epoch`` from ``start_batch`` on; order = f(seed, epoch)."""
        self.train_set.set_epoch(epoch)
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.train_set)).tolist()
        b, w = self.cfg.batch_size, self.world
        batches = [order[(i * w + self.rank) * b : (i * w + self.rank + 1) * b] for i in range(start_batch, self.steps_per_epoch)]
        # own generator: creating a loader must not draw from the global torch RNG (exact resume)
        seeds = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        workers, pin = self.cfg.data.num_workers, self.device.type == "cuda"
        return DataLoader(
            self.train_set,
            batch_sampler=batches,
            num_workers=workers,
            pin_memory=pin,
            generator=seeds,
            collate_fn=collate_samples,
        )

    def _autocast(self):
        return nullcontext() if self.cfg.amp == "none" else torch.autocast(self.device.type, dtype=_AMP_DTYPES[self.cfg.amp])

    def _update(self, loss: Tensor, names: list[str], model: nn.Module, what: str) -> None:
        """Stop on a non-finite ``loss``; else backpropagate it (AMP-scaled), clip ``model``, step ``names``."""
        if not torch.isfinite(loss):
            raise InpaintlabError(
                f"{what} loss is {loss.item()} at step {self.step}; stopped. Last good checkpoint: "
                f"{self.last_checkpoint or 'none saved yet'}. Lower optim.lr, set optim.grad_clip, or use --amp bf16/none"
            )
        for name in names:
            self.optimizers[name].zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip is not None:
            for name in names:
                self.scaler.unscale_(self.optimizers[name])
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.optim.grad_clip)
        for name in names:
            self.scaler.step(self.optimizers[name])

    def train_step(self, image: Tensor, mask: Tensor, extras: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """One iteration on this rank's batch, in order: G forward, D step (on the detached fake), G step
        (judged by the updated, frozen D), lr schedule, EMA. image (B,3,H,W) [0,1], mask (B,1,H,W) 1 = hole,
        ``extras`` (``Sample.extras`` of a batch) the extra inputs the generator declares (``training_inputs``)."""
        image, mask, extra = self._on_device(image, mask, extras or {})
        self.generator.train()
        with self._autocast():
            out = self.g_train(image, mask, **extra)
        d_logs: dict[str, Tensor] = {}
        if self.discriminator is not None:
            self.discriminator.requires_grad_(True)
            with self._autocast():
                d_loss, d_logs = self.d_loss(self.d_train, out, image, mask)
            self._update(d_loss, ["discriminator"], self.discriminator, "discriminator")
            self.discriminator.requires_grad_(False)
        with self._autocast():
            g_loss, g_logs = self.g_loss(out, image, mask)
        self._update(g_loss, self.g_optimizer_names, self.generator, "generator")
        self.scaler.update()
        for scheduler in self.schedulers.values():
            scheduler.step()
        if self.ema is not None:
            self._update_ema()
        self.step, self.batch_index = self.step + 1, self.batch_index + 1
        self._last_batch = (image, mask, tuple(o.detach() for o in out.outputs))
        return {**d_logs, **g_logs}

    def _on_device(self, image: Tensor, mask: Tensor, extras: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """The batch on the training device, with the generator's extra inputs (refused when missing);
        degenerate masks are counted first, on the loader's CPU tensor (no device sync)."""
        self._count_degenerate(mask)
        missing = [name for name in self.extra_inputs if name not in extras]
        if missing:
            raise InpaintlabError(
                f"model {self.cfg.model.name!r} trains with extra input {missing[0]!r}, which the "
                f"batch does not carry (it has: {', '.join(extras) or 'none'}); build the data "
                "with extra_inputs=trainer.extra_inputs"
            )
        extra = {name: extras[name].to(self.device, non_blocking=True) for name in self.extra_inputs}
        return image.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True), extra

    def _count_degenerate(self, mask: Tensor) -> None:
        """Count masks with no hole or nothing but hole (B,1,H,W); warn at the first of each kind."""
        ratio = mask.detach().float().mean(dim=(1, 2, 3))
        for kind, count in (("no hole", int((ratio == 0).sum())), ("all hole", int((ratio == 1).sum()))):
            if count and not self.degenerate_masks[kind] and self.is_main:
                warnings.warn(
                    f"step {self.step}: {count} training mask(s) with {kind} in this batch (they teach nothing); "
                    "the count goes to summary.json (degenerate_masks). Check masks.source",
                    stacklevel=2,
                )
            self.degenerate_masks[kind] += count

    @torch.no_grad()
    def _update_ema(self) -> None:
        weight = 1.0 - self.cfg.ema_decay_at(self.step)
        for ema_param, param in zip(self.ema.parameters(), self.generator.parameters()):
            ema_param.lerp_(param, weight)
        for ema_buffer, buffer in zip(self.ema.buffers(), self.generator.buffers()):  # BN statistics follow the
            if ema_buffer.is_floating_point():  # averaged weights (taken live they fit only the live weights)
                ema_buffer.lerp_(buffer, weight)
            else:
                ema_buffer.copy_(buffer)

    def fit(self) -> dict[str, float]:
        """Train until ``total_steps``; returns the last logged scalars (and validation metrics)."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        if self.is_main:
            prepare(self.out, self.start, self.cfg)  # also writes config.json; resumed at N: TensorBoard hides events after N
            self._tb = SummaryWriter(str(self.out / "tb"), purge_step=self.step + 1 if self.step else None)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.is_main, desc="train", dynamic_ncols=True)
        last: dict[str, float] = {}
        began = time.time()
        if self.step == 0 and self.val_set is not None and self.cfg.val_every > 0:
            last.update(self.validate())  # the untrained starting point of the validation curve
        tick = (time.perf_counter(), self.step)
        while self.step < self.total_steps:
            if self.batch_index >= self.steps_per_epoch:
                self.epoch, self.batch_index = self.epoch + 1, 0
            for sample in worker_errors_in_one_line(self._loader(self.epoch, self.batch_index)):
                try:
                    logs = self.train_step(sample.image, sample.mask, sample.extras)
                except torch.OutOfMemoryError:
                    raise InpaintlabError(
                        f"CUDA out of memory at step {self.step} (batch_size {self.cfg.batch_size}, {self.cfg.data.size}px): "
                        "lower batch_size or data.size, or use --amp bf16"
                    ) from None
                bar.update(1)
                report_skipped_images(self.train_set, self.val_set)
                if self._due(self.cfg.log_every):
                    last, tick = self._log_step(logs, tick, bar)
                if self._due(self.cfg.image_every) and self.is_main:
                    self._tb.add_image("train/samples", image_grid(*self._last_batch), self.step)
                if self._due(self.cfg.val_every) and self.val_set is not None:
                    last.update(self.validate())
                if self._due(self.cfg.ckpt_every):
                    self.save()
                if self.step >= self.total_steps:
                    break
        bar.close()
        if self.last_checkpoint is None or self.last_checkpoint.name != f"step_{self.step:08d}.safetensors":
            self.save()
        skipped = report_skipped_images(self.train_set, self.val_set, final=True)  # every rank's, gathered
        if self._tb is not None:  # rank 0: curves.png, samples.png (last batch), summary.json
            self._tb.close()
            self._tb = None
            finish(
                self.out,
                self.start,
                getattr(self, "_last_batch", None),
                steps=self.step,
                total_steps=self.total_steps,
                seconds=time.time() - began,
                checkpoint=self.last_checkpoint,
                skipped_images=skipped,
                degenerate_masks=dict(self.degenerate_masks),
                last=last,
            )
        return last

    def _due(self, every: int) -> bool:
        return every > 0 and (self.step % every == 0 or self.step == self.total_steps)

    def _log_step(self, logs: dict[str, Tensor], tick: tuple[float, int], bar) -> tuple[dict[str, float], tuple[float, int]]:
        """Log this step's losses, lr and images/s since ``tick`` (time, step); returns (scalars, new tick)."""
        images, seconds = (self.step - tick[1]) * self.cfg.batch_size * self.world, time.perf_counter() - tick[0]
        speed = images / max(seconds, 1e-9)
        lr = self.optimizers[self.g_optimizer_names[0]].param_groups[0]["lr"]
        scalars = {**{k: float(v) for k, v in logs.items()}, "lr": lr, "images_per_s": speed}
        bar.set_postfix(loss=f"{scalars['g/total']:.4f}", img_s=f"{speed:.1f}")
        self._log(scalars)
        return scalars, (time.perf_counter(), self.step)

    def _log(self, scalars: dict[str, float]) -> None:
        """Rank 0: TensorBoard scalars and one JSON line in ``metrics.jsonl``."""
        if not self.is_main or self._tb is None:
            return
        for key, value in scalars.items():
            self._tb.add_scalar(key, value, self.step)
        with open(self.out / "metrics.jsonl", "a") as fh:
            fh.write(strict_json({"step": self.step, "epoch": self.epoch, **scalars}) + "\n")

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """EMA (else live) generator on ``val_count`` images, sharded over ranks -> ``val/[<bin>/]<metric>``
        (``val_train/...`` when the validation images are training images: no ``data.val_root`` for a folder)."""
        from .masks import HOLE_RATIO_BINS
        from .metrics import MetricTracker

        model = self.ema if self.ema is not None else self.generator
        tracker = MetricTracker(bins=self.cfg.masks.val_bins or HOLE_RATIO_BINS)
        model.eval()
        mine = list(range(self.rank, min(self.cfg.data.val_count, len(self.val_set)), self.world))
        for start in range(0, len(mine), self.cfg.batch_size):
            batch = collate_samples([self.val_set[i] for i in mine[start : start + self.cfg.batch_size]])
            image, mask = batch.image.to(self.device), batch.mask.to(self.device)
            with self._autocast():
                pred = model(image, mask).pred
            tracker.update(composite(pred.float().clamp(0, 1), image, mask), image, mask)
        tracker.gather()
        model.train()
        result = tracker.result()
        prefix = self.val_prefix
        groups = {prefix: result["overall"], **{f"{prefix}{label}/": values for label, values in result["bins"].items()}}
        scalars = {prefix + k: float(v) for prefix, values in groups.items() for k, v in values.items() if k != "count"}
        self._log(scalars)
        return scalars

    def save(self) -> Path:
        """Write ``checkpoints/step_XXXXXXXX.safetensors`` on rank 0; every rank must call it (RNG gather)."""
        states = [rng_state()]
        if self.world > 1:
            states = [None] * self.world
            dist.all_gather_object(states, rng_state())
        path = self.last_checkpoint = self.out / "checkpoints" / f"step_{self.step:08d}.safetensors"
        if not self.is_main:
            return path
        header = {
            "model": contract_of(self.generator).spec.to_header(),
            "discriminator": {"name": self.cfg.model.discriminator, "kwargs": dict(self.cfg.model.discriminator_kwargs)},
            "config": to_dict(self.cfg),
            "step": self.step,
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "world_size": self.world,
            "init_sha256": self.init_sha256,
            "schedulers": {name: scheduler.state_dict() for name, scheduler in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "optimizers": {},
            "rng": {
                str(r): {"numpy": st["numpy"], "python": st["python"], "cuda_devices": len(st["cuda"])}
                for r, st in enumerate(states)
            },
        }
        modules = {"generator": self.generator, "generator_ema": self.ema, "discriminator": self.discriminator}
        tensors = {f"{prefix}.{k}": v for prefix, m in modules.items() if m is not None for k, v in m.state_dict().items()}
        for name, optimizer in self.optimizers.items():
            opt_tensors, header["optimizers"][name] = optimizer_parts(name, optimizer)
            tensors.update(opt_tensors)
        for rank, state in enumerate(states):
            tensors[f"rng.{rank}.torch"] = state["torch"]
            tensors.update({f"rng.{rank}.cuda.{i}": s for i, s in enumerate(state["cuda"])})
        save_checkpoint(path, tensors, header)
        if self.cfg.keep_checkpoints > 0:
            for stale in sorted(path.parent.glob("step_*.safetensors"))[: -self.cfg.keep_checkpoints]:
                stale.unlink()
        return path

    def load(self, path: str | Path) -> None:
        """Restore everything ``save`` wrote; the run continues exactly where that one stopped."""
        tensors, header = load_checkpoint(path, device="cpu")
        try:
            self.generator.load_state_dict(sub_state(tensors, "generator"))
            if self.ema is not None:
                self.ema.load_state_dict(sub_state(tensors, "generator_ema") or sub_state(tensors, "generator"))
            if self.discriminator is not None:
                self.discriminator.load_state_dict(sub_state(tensors, "discriminator"))
            for name, optimizer in self.optimizers.items():
                load_optimizer_parts(optimizer, name, tensors, header["optimizers"][name])
        except (RuntimeError, KeyError, ValueError) as err:
            raise InpaintlabError(f"{path} does not match this run's model/optimisers ({str(err).splitlines()[0]})") from None
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(header["schedulers"][name])
        self.scaler.load_state_dict(header["scaler"])
        self.step, self.epoch, self.batch_index = header["step"], header["epoch"], header["batch_index"]
        self.init_sha256 = header.get("init_sha256")
        rank = self.rank % header["world_size"]  # a different world size cannot continue every rank's stream
        meta = header["rng"][str(rank)]
        cuda = [tensors[f"rng.{rank}.cuda.{i}"] for i in range(meta["cuda_devices"])]
        set_rng_state({"torch": tensors[f"rng.{rank}.torch"], "cuda": cuda, **meta})
        self.last_checkpoint = Path(path)


def run_training(
    cfg: TrainConfig, out_dir: str | Path, device: str = "cpu", resume: str | None = None, overwrite: bool = False
) -> dict[str, float]:
    """Build a ``Trainer`` and ``fit`` it; under torchrun every rank calls this."""
    trainer = Trainer(cfg, out_dir, device=device, resume=resume, overwrite=overwrite)
    left = False
    try:
        result = trainer.fit()
        if trainer.world > 1:
            distributed.leave(barrier=True)  # leave together after a run that finished on every rank
            left = True
        return result
    finally:
        if trainer.world > 1 and not left:
            distributed.leave(barrier=False)


__all__ = ["Trainer", "image_grid", "run_training", "training_inputs"]
