"""Write the card fields of a shipped model from its run, its held-out evaluation and its strategy check.

    python scripts/make_card.py --run ~/runs/lgnet_compact --eval ~/runs/eval_final \
        --strategies ~/runs/strategies --split ~/runs/split --out card.json
    inpaintlab ship ~/runs/lgnet_compact/checkpoints/step_00005292.safetensors --card card.json --recalibrate-bn 100

The held-out table is copied from ``inpaintlab eval``'s per-model ``metrics.json`` (model and Telea); the
default strategy is the one with the highest mean PSNR (the protocol's metric) in ``inpaintlab strategies``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inpaintlab.bench import count_parameters
from inpaintlab.checkpoint import load_model, read_header


def _table(metrics_json: Path) -> dict:
    report = json.loads(metrics_json.read_text())
    keep = ("l1", "psnr", "ssim")
    return {
        "overall": {k: report["overall"][k] for k in keep},
        "bins": {label: {k: values[k] for k in keep} for label, values in report["bins"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, help="default: the run's newest checkpoint")
    parser.add_argument("--eval", type=Path, required=True, help="inpaintlab eval output (model + telea folders)")
    parser.add_argument("--strategies", type=Path, required=True, help="inpaintlab strategies output")
    parser.add_argument("--split", type=Path, required=True, help="inpaintlab split output")
    parser.add_argument("--wall-time-h", type=float, required=True, help="training wall time in hours")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    checkpoint = args.checkpoint or sorted((args.run / "checkpoints").glob("step_*.safetensors"))[-1]
    header = read_header(checkpoint)
    cfg = header["config"]
    model_folder = args.eval / header["model"]["name"]
    strategies = json.loads((args.strategies / "strategies.json").read_text())
    model_means = {k: v for k, v in strategies["mean"].items() if k != "telea"}
    split = json.loads((args.split / "split.json").read_text())
    card = {
        "summary": (
            f"LGNet (coarse U-Net, local net, global U-Net with attention) at base width 16, trained "
            f"{header['step']} steps on {split['train_images']} real photos with real NVIDIA masks on a CPU"
        ),
        "architecture": {
            "paper": "Quan et al., Image Inpainting with Local and Global Refinement, TIP 2022",
            "model": cfg["model"],
            "parameters": None,
        },
        "inference_size": 256,
        "default_strategy": max((k for k in model_means if k in ("pad", "resize", "crop")), key=lambda k: model_means[k]["psnr"]),
        "smooth_threshold": 1.5,
        "smooth_threshold_reason": (
            "regions whose known 8-px band changes by < 1.5 grey levels per pixel go to Telea: "
            "measured band gradients are 0-0.96 for flat, gradient, sky and defocused "
            "backgrounds, 2.96-10.2 for object holes in the built-in photos, and below 1.5 "
            "for 5.9 % of the hole regions of the held-out photos x NVIDIA masks"
        ),
        "data": {
            "images": f"{split['train_images']} training photos of ../shared/datasets (textures, facades, "
            "scenes, faces; 256 px), 128 px random crops at their own scale",
            "masks": f"{split['train_masks']} real NVIDIA irregular masks read at 256 px, 128 px windows",
            "split": "inpaintlab split (hash of each file name): 10 % of every image folder and 200 masks per "
            "hole-ratio bin held out, never trained on",
            "split_counts": split,
        },
        "training": {
            "preset": "lgnet_compact_cpu",
            "steps": header["step"],
            "epochs": header["epoch"],
            "batch_size": cfg["batch_size"],
            "amp": cfg["amp"],
            "ema_decay": cfg["ema_decay"],
            "wall_time_h": args.wall_time_h,
            "threads": 1,
            "device": "2-core CPU (AMX-BF16), one core",
            "losses": "LGNet's valid 1, hole 6, TV 0.1, LSGAN 0.1 on the coarse composite; no perceptual or "
            "style terms (no pretrained VGG16 offline)",
        },
        "heldout": {
            "protocol": "inpaintlab eval: held-out photos x held-out NVIDIA masks by measured hole ratio, "
            "metrics on the composite at 256 px (L1 in %, PSNR in dB, SSIM)",
            "model": _table(model_folder / "metrics.json"),
            "telea": _table(args.eval / "telea" / "metrics.json"),
        },
        "strategies": {
            "measured": "inpaintlab strategies: object-shaped holes of 10/25/40 % in the built-in test "
            "photos at their own size and in smooth 512 px backgrounds",
            "mean": strategies["mean"],
        },
        "commands": [
            "inpaintlab split ../shared/datasets --out ~/runs/split",
            "OMP_NUM_THREADS=1 inpaintlab train --preset lgnet_compact_cpu --out ~/runs/lgnet_compact --resume auto "
            "--set data.root=~/runs/split/train_images.txt --set masks.source=~/runs/split/train_masks.txt "
            "--set data.val_root=~/runs/split/heldout_images.txt --set masks.val_source=~/runs/split/heldout_masks.txt",
            f"inpaintlab ship {checkpoint.name} --card card.json --recalibrate-bn 100",
            "inpaintlab eval --model lgnet_compact --model telea --model navier_stokes "
            "--images ~/runs/split/heldout_images.txt --masks ~/runs/split/heldout_masks.txt --out ~/runs/eval_final",
            "inpaintlab strategies --model lgnet_compact --out ~/runs/strategies",
            "python scripts/make_card.py ... --out card.json && inpaintlab ship CHECKPOINT --card card.json --recalibrate-bn 100",
        ],
    }
    card["parameters"] = count_parameters(load_model(checkpoint))["total"]
    card["architecture"]["parameters"] = card["parameters"]
    args.out.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
