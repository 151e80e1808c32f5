"""Where one CPU training step of a recipe goes: wall time per phase and the top ops (torch.profiler).

    OMP_NUM_THREADS=1 python scripts/profile_train_step.py --preset lgnet_compact_cpu \
        --images ~/runs/split/train_images.txt --masks ~/runs/split/train_masks.txt [--amp none]
"""

import argparse
import dataclasses
import tempfile
import time

from torch.profiler import ProfilerActivity, profile

from inpaintlab.presets import get_preset
from inpaintlab.train import Trainer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--preset", default="lgnet_compact_cpu")
parser.add_argument("--images", required=True)
parser.add_argument("--masks", required=True)
parser.add_argument("--amp", default="none", choices=["none", "bf16"])
args = parser.parse_args()
cfg = get_preset(args.preset)
cfg = dataclasses.replace(
    cfg,
    amp=args.amp,
    data=dataclasses.replace(cfg.data, root=args.images, val_count=0),
    masks=dataclasses.replace(cfg.masks, source=args.masks),
)
t = Trainer(cfg, tempfile.mkdtemp() + "/run")
loader = iter(t._loader(0, 0))
samples = [next(loader) for _ in range(4)]
began = time.perf_counter()
next(loader)
data_s = time.perf_counter() - began
for warm in samples[:2]:
    t.train_step(warm.image, warm.mask, warm.extras)


def timed(phases: dict, name: str, fn):
    began = time.perf_counter()
    result = fn()
    phases[name] = time.perf_counter() - began
    return result


def phases() -> dict:
    """One step by hand, phase by phase: G forward, D step, G loss, G backward + Adam, EMA."""
    image, mask, r = samples[2].image, samples[2].mask, {}
    out = timed(r, "G forward", lambda: t.g_train(image, mask))

    def d_step():
        t.discriminator.requires_grad_(True)
        d, _ = t.d_loss(t.d_train, out, image, mask)
        t._update(d, ["discriminator"], t.discriminator, "discriminator")
        t.discriminator.requires_grad_(False)

    timed(r, "D step (forward, backward, Adam)", d_step)
    g = timed(r, "G loss (D on the fake included)", lambda: t.g_loss(out, image, mask)[0])
    timed(r, "G backward + Adam", lambda: t._update(g, t.g_optimizer_names, t.generator, "generator"))
    timed(r, "EMA", t._update_ema)
    return r


r = phases()
r["data loading (one batch)"] = data_s
total = sum(r.values())
print("| phase | ms | share |\n|---|---:|---:|")
for k, v in r.items():
    print(f"| {k} | {v * 1000:.0f} | {v / total:.0%} |")
with profile(activities=[ProfilerActivity.CPU]) as prof:
    t.train_step(samples[3].image, samples[3].mask, samples[3].extras)
events = prof.key_averages()
all_ms = sum(e.self_cpu_time_total for e in events)
print("\n| op (self CPU) | ms | share |\n|---|---:|---:|")
for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]:
    print(f"| `{e.key}` | {e.self_cpu_time_total / 1000:.0f} | {e.self_cpu_time_total / all_ms:.0%} |")
