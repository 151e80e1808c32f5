"""Command line: ``inpaintlab models|masks|split|ship|ship-continued|continue|eval|demo|train|bench|fill|serve|export``.

Thin by design: each subcommand parses its arguments and calls one library function. Every problem the
user can fix is an ``InpaintlabError``, printed as one line (``inpaintlab: error: ...``) with exit code 2.

Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_cmd_<name>(args)``.
"""

from __future__ import annotations

import argparse
import sys

from .cli_values import box, device_name, non_negative_int, port, positive_float, positive_int
from .errors import InpaintlabError


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line message (its default is also 2)."""


# ---------------------------------------------------------------------------------------------- models


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list registered generators and discriminators")
    p.add_argument("pattern", nargs="?", default="*", help="glob filter, e.g. 'lgnet*'")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args) -> None:
    from .models import list_discriminators, list_models
    from .models.classical import CLASSICAL_MODELS
    from .pretrained import DEFAULT_MODEL, model_card, pretrained_models

    shipped = pretrained_models()
    print("generators (* = trained weights shipped, usable by fill/serve/pipeline; others train first):")
    for name in list_models(args.pattern):
        if name in shipped:
            card = model_card(name)
            default = ", the default" if name == DEFAULT_MODEL else ""
            print(f"* {name}  [trained weights{default}: {card.get('summary', '')}]")
        else:
            print(f"  {name}{'  [classical]' if name in CLASSICAL_MODELS else ''}")
    print("discriminators:")
    for name in list_discriminators(args.pattern):
        print(f"  {name}")


# ----------------------------------------------------------------------------------------------- bench


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="parameters, MACs (true and thop-style), latency, GPU throughput/memory")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="registered model name (see `inpaintlab models`)")
    which.add_argument("--checkpoint", help="inpaintlab checkpoint file")
    which.add_argument("--train", metavar="PRESET", help="training-step throughput of a recipe (images/s per variant)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--train: override a recipe value (repeatable)",
    )
    p.add_argument(
        "--variants",
        default="fp32,bf16,channels_last,bf16+channels_last,compile,bf16+compile",
        help="--train: comma-separated variants (fp32, bf16, channels_last, compile, joined by '+')",
    )
    p.add_argument("--steps", type=int, default=5, help="--train: timed steps per variant after 2 warm-up steps")
    p.add_argument("--size", type=int, default=256, help="square input side (default 256)")
    p.add_argument("--batch", type=int, default=1, help="batch for latency (default 1)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs after 2 warm-up runs (default 10)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda adds GPU latency/throughput/memory")
    p.add_argument("--throughput-batch", type=int, default=16, help="GPU throughput batch (default 16)")
    p.add_argument("--json", help="also write the report as JSON to this file")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> None:
    import json
    from pathlib import Path

    from .bench import benchmark, format_report, format_train_report, train_throughput
    from .checkpoint import load_model
    from .models import create_model
    from .presets import resolve_train_config

    if args.train:
        cfg, _ = resolve_train_config(args.train, None, args.overrides)
        variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
        report = train_throughput(cfg, variants, steps=args.steps, device=args.device)
        print(format_train_report(report))
    else:
        model = load_model(args.checkpoint) if args.checkpoint else create_model(args.model)
        report = benchmark(
            model,
            size=args.size,
            batch=args.batch,
            repeats=args.repeats,
            device=args.device,
            throughput_batch=args.throughput_batch,
        )
        if args.checkpoint:
            report["checkpoint"] = str(args.checkpoint)
        print(format_report(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")


# ------------------------------------------------------------------------------------------ eval, demo


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate models on images x masks-by-hole-ratio -> JSON/CSV/Markdown/plots")
    p.add_argument(
        "--model",
        dest="models",
        action="append",
        type=lambda v: ("model", v),
        default=[],
        help="registered model name (repeatable)",
    )
    p.add_argument(
        "--checkpoint",
        dest="models",
        action="append",
        type=lambda v: ("checkpoint", v),
        help="inpaintlab checkpoint file, or LABEL=FILE to name its row (repeatable)",
    )
    p.add_argument("--images", required=True, help="image folder, .txt list, 'builtin' or 'synthetic:N'")
    p.add_argument("--masks", default="bins", help="mask folder or .txt list, or bins (generated, default), center, circles")
    p.add_argument(
        "--bins",
        default="nvidia",
        help="hole-ratio bins: nvidia (six 10%% bins, default), cicm (0-20/20-40/40-60%%), msanet "
        "(10-20/30-40/50-60%%) or lo-hi pairs, e.g. 0-0.2,0.2-0.4",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=256, help="image and mask side (default 256)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-images", type=int, default=None, help="use only the first N images")
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric names (default l1,psnr,ssim,detail,detail_gt,grid,grid_gt,lattice,lattice_gt: the "
        "detail ratio of the fill and of the original, and the shares of that detail locked to the 2-pixel grid and to "
        "the 8-pixel lattice)",
    )
    p.add_argument("--device", default="cpu", type=device_name)
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the generated masks (default 0)")
    p.add_argument(
        "--feature-weights",
        default="pretrained",
        choices=["pretrained", "random"],
        help="LPIPS/FID network weights; 'random' numbers are not real LPIPS/FID (reports say so)",
    )
    p.add_argument(
        "--weights",
        default="ema",
        choices=["ema", "live"],
        help="a checkpoint's EMA generator (default) or its live one (e.g. a short run whose EMA still "
        "holds much of its initialisation); the report records which",
    )
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args) -> None:
    from pathlib import Path

    from .data import build_dataset
    from .errors import InpaintlabError
    from .evaluate import DEFAULT_METRICS, MASK_SETS, evaluate, evaluate_models, load_rows
    from .masks import MaskFolder, parse_bins
    from .report import markdown_table

    if not args.models:
        raise InpaintlabError("give at least one --model NAME or --checkpoint PATH")
    rank = _join_torchrun(args)
    if args.masks in MASK_SETS:
        masks = args.masks
    elif Path(args.masks).is_dir() or Path(args.masks).suffix == ".txt":
        masks = MaskFolder(args.masks, args.size)
    else:
        raise InpaintlabError(
            f"mask folder {args.masks} does not exist; expected a folder of mask images, "
            f"a .txt list of mask files or one of {', '.join(MASK_SETS)}"
        )
    images = build_dataset(args.images, split="test", size=args.size)
    models, per_model = load_rows(args.models, args.device, args.weights)
    common = dict(
        metrics=[m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else DEFAULT_METRICS,
        bins=parse_bins(args.bins),
        batch_size=args.batch_size,
        device=args.device,
        max_images=args.max_images,
        seed=args.seed,
        feature_weights=args.feature_weights,
        settings={"images_source": args.images, "masks_source": args.masks},
    )
    if len(models) == 1:
        label, model = models[0]
        common["settings"].update(per_model[label])
        report = evaluate(model, images, masks, out_dir=args.out, **common)
        if rank == 0:
            print(markdown_table(report))
            print(f"wrote {Path(args.out) / 'metrics.json'} (+ .csv, .md, plots, samples.png)")
    else:
        evaluate_models(models, images, masks, args.out, model_settings=per_model, **common)
        if rank == 0:
            print((Path(args.out) / "README.md").read_text())
            print(f"wrote {Path(args.out) / 'README.md'} and one folder per model")
    _leave_torchrun()


def _leave_torchrun() -> None:
    """Under torchrun: wait for every rank, then close the process group (a no-op otherwise)."""
    from .distributed import leave

    leave(barrier=True)


def _join_torchrun(args) -> int:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): gloo on CPU, NCCL on
    cuda:LOCAL_RANK (``args.device`` is updated). Returns this process's rank (0 without torchrun)."""
    from .distributed import join

    rank, world, local_rank = join(args.device)
    if world > 1 and args.device == "cuda":
        args.device = f"cuda:{local_rank}"
    return rank


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="built-in photos x masks in six bins x the shipped model and classical baselines")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated names or checkpoint files (default: the shipped default model, telea, navier_stokes)",
    )
    p.add_argument("--max-images", type=int, default=12, help="built-in test photos per bin (default 12)")
    p.add_argument("--size", type=int, default=256)
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> None:
    from .evaluate import run_demo

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    readme = run_demo(args.out, models, size=args.size, max_images=args.max_images)
    print(readme.read_text())
    print(f"demo report: {readme}")


# ----------------------------------------------------------------------------------------------- train


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a preset or config file (works under torchrun)")
    p.add_argument("--preset", help="recipe name, e.g. lgnet_celebahq or lgnet_tiny_builtin")
    p.add_argument("--config", help="a full config file (.json or .toml), e.g. a run's config.json")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set optim.lr=1e-4 (repeatable)",
    )
    p.add_argument("--out", help="run folder (default runs/<preset or config name>)")
    p.add_argument(
        "--resume",
        help="checkpoint to resume from, or 'auto' (the newest in the run folder that "
        "verifies; starts fresh when there is none); logs are cut back to its step",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a run folder that holds a run: the old one is moved to <out>.replaced-<time>",
    )
    p.add_argument(
        "--init",
        metavar="SOURCE",
        help="start from these weights (fresh optimisers, step 0): pretrained:NAME (shipped weights, e.g. "
        "pretrained:lgnet_compact) or a checkpoint file; same as --set init_from=SOURCE",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], help="mixed precision (overrides the config)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> None:
    import torch

    from .presets import resolve_train_config
    from .train import run_training

    overrides = args.overrides + ([f"init_from={args.init}"] if args.init else [])
    cfg, name = resolve_train_config(args.preset, args.config, overrides, args.amp)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_training(cfg, args.out or f"runs/{name}", device=device, resume=args.resume, overwrite=args.overwrite)


# ------------------------------------------------------------------------------------------- attention


def _add_attention(sub) -> None:
    p = sub.add_parser("attention", help="MSA-Net attention maps (Figs. 8-9): where each hole pixel borrows from")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="inpaintlab checkpoint of a model with pixelwise attention")
    which.add_argument("--model", help="registered model name (random weights), e.g. msanet")
    p.add_argument("image", help="RGB image file")
    p.add_argument("mask", help="mask file, white (>127) = hole")
    p.add_argument("-o", "--output", required=True, help="output PNG: input | result | maps | colour key")
    p.add_argument("--size", type=int, default=256, help="both files are resized to size x size (default 256)")
    p.add_argument(
        "--reduce",
        choices=["argmax", "expectation"],
        default="argmax",
        help="offset of the most attended key (default) or the attention-weighted mean",
    )
    p.set_defaults(func=_cmd_attention)


def _cmd_attention(args) -> None:
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    from .checkpoint import load_model
    from .models import create_model
    from .models.msanet import attention_panel
    from .pipeline import read_image_file, to_hole_array, to_rgb_array

    model = load_model(args.checkpoint) if args.checkpoint else create_model(args.model).eval()
    side = (args.size, args.size)
    rgb = Image.fromarray(to_rgb_array(read_image_file(args.image))).resize(side, Image.Resampling.BICUBIC)
    hole = Image.fromarray(to_hole_array(read_image_file(args.mask)).astype(np.uint8) * 255)
    hole = hole.resize(side, Image.Resampling.NEAREST)
    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255
    mask = torch.from_numpy(np.array(hole) > 127)[None, None].float()
    panel = attention_panel(model, image, mask, reduce=args.reduce)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(panel).save(args.output)
    print(f"wrote {args.output} ({panel.shape[1]}x{panel.shape[0]})")


# ------------------------------------------------------------------------------------ fill / serve / export


def _add_fill(sub) -> None:
    p = sub.add_parser("fill", help="inpaint an image (or a folder) with a mask (or a folder, paired by name)")
    p.add_argument("images", metavar="IMG|DIR", help="image file or folder of images")
    hole = p.add_mutually_exclusive_group(required=True)
    hole.add_argument("--mask", metavar="M|DIR", help="mask file (white = hole) or folder, same stems")
    hole.add_argument(
        "--box",
        type=box,
        metavar="X0,Y0,X1,Y1",
        help="one image: remove the object inside this box (pixels), selected with GrabCut and grown by --grow",
    )
    p.add_argument("--grow", type=int, default=8, help="--box: grow (< 0: shrink) the selection by N px (default 8)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--model", help="a model with weights or a classical one (default: the shipped default, see `inpaintlab models`)"
    )
    which.add_argument("--checkpoint", help="inpaintlab checkpoint file")
    p.add_argument("-o", "--out", required=True, help="output folder (or a .png file for one image)")
    p.add_argument(
        "--strategy",
        choices=["pad", "resize", "crop", "detail"],
        default=None,
        help="pad: full size; resize: bounded long side; crop: one crop per hole region; detail: each hole region's box at "
        "the model's size plus the photo's own full-resolution texture (default: the model's, see its card)",
    )
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=100_000_000,
        help="refuse images with more pixels than this (default 100,000,000)",
    )
    p.add_argument("--side-by-side", action="store_true", help="write image | mask | result")
    p.add_argument(
        "--allow-lossy",
        action="store_true",
        help="allow -o x.jpg / .webp (lossy: pixels outside the hole change too); PNG otherwise",
    )
    p.add_argument("--device", default="cpu", type=device_name, help="torch device (default cpu)")
    p.set_defaults(func=_cmd_fill)


def _cmd_fill(args) -> None:
    from .distributed import rank_and_world
    from .pipeline import InpaintPipeline, fill_paths
    from .pretrained import DEFAULT_MODEL

    if args.box is not None:
        return _fill_box(args)
    _join_torchrun(args)  # under torchrun every rank fills its own share of the folder
    try:
        pipe = InpaintPipeline.from_checkpoint(args.checkpoint or args.model or DEFAULT_MODEL, device=args.device)
        report = fill_paths(
            pipe,
            args.images,
            args.mask,
            args.out,
            args.strategy,
            args.side_by_side,
            args.max_pixels,
            args.allow_lossy,
            shard=rank_and_world(),
        )
    finally:
        _leave_torchrun()
    print(f"wrote {len(report.written)} file(s) to {args.out}")
    if report.hidden:
        print(f"  left {len(report.hidden)} hidden file(s) alone: {', '.join(report.hidden)}", file=sys.stderr)
    if report.interrupted:
        finished = ", ".join(p.name for p in report.written) or "none"
        raise InpaintlabError(f"interrupted while filling {report.interrupted} (nothing written for it); finished: {finished}")
    for name, reason in report.failed:
        print(f"  skipped {name}: {reason}", file=sys.stderr)
    if report.failed:
        total = len(report.failed) + len(report.written)
        raise InpaintlabError(f"{len(report.failed)} of {total} image(s) failed (listed above)")


def _fill_box(args) -> None:
    """``fill IMG --box``: the object in the box (``select.select_object``) becomes the mask, then ``fill``."""
    import tempfile
    from pathlib import Path

    from PIL import Image

    from .errors import InpaintlabError
    from .pipeline import read_image_file, to_rgb_array
    from .select import select_object

    if not Path(args.images).is_file():
        raise InpaintlabError(f"--box selects in one image; {args.images} is not an image file")
    picture = to_rgb_array(read_image_file(args.images, args.max_pixels))
    hole = select_object(picture, args.box, grow=args.grow)
    with tempfile.TemporaryDirectory(prefix="inpaintlab_box_") as folder:
        args.mask = str(Path(folder) / "selected.png")
        Image.fromarray(hole.astype("uint8") * 255).save(args.mask)
        args.box = None
        print(f"selected {int(hole.sum()):,} pixels inside the box (grown by {args.grow} px)")
        _cmd_fill(args)


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="web page + JSON API to paint a hole and inpaint it")
    p.add_argument("--checkpoint", action="append", default=[], help="checkpoint to serve (repeatable)")
    p.add_argument("--model", action="append", default=[], help="registered model to serve (repeatable)")
    p.add_argument("--port", type=port, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--device", default="cpu", type=device_name, help="torch device (default cpu)")
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=4096 * 4096,
        help="per uploaded image (default 4096*4096: the server faces the network, so its bound is its own)",
    )
    p.add_argument("--max-upload-mb", type=positive_float, default=32.0, help="request body limit (default 32 MB)")
    p.add_argument(
        "--job-seconds", type=positive_float, default=120.0, help="a job still running after this is stopped, 503 (default 120)"
    )
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args) -> None:
    from .serve import ServerLimits, serve

    limits = ServerLimits(
        max_upload_bytes=int(args.max_upload_mb * (1 << 20)), max_pixels=args.max_pixels, job_seconds=args.job_seconds
    )
    serve(args.host, args.port, args.model, args.checkpoint, args.device, limits)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a generator to ONNX or TorchScript: forward(image, mask) -> pred")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="inpaintlab checkpoint file")
    which.add_argument("--model", help="registered model name (untrained weights)")
    p.add_argument("--format", choices=["onnx", "torchscript"], required=True)
    p.add_argument("-o", "--out", required=True, help="output file (.onnx / .pt)")
    p.add_argument("--size", type=int, default=256, help="side of the example input used for tracing (default 256)")
    p.add_argument("--legacy-onnx", action="store_true", help="use the TorchScript-based ONNX exporter")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> None:
    from .checkpoint import load_model
    from .export import export_model
    from .models import create_model

    model = load_model(args.checkpoint) if args.checkpoint else create_model(args.model).eval()
    path = export_model(model, args.out, args.format, size=args.size, dynamo=not args.legacy_onnx)
    print(f"wrote {path} ({args.format}: forward(image, mask) -> pred)")


# ----------------------------------------------------------------------------------------------- masks


def _add_masks(sub) -> None:
    p = sub.add_parser("masks", help="make the synthetic binned test masks, or summarise a mask folder")
    actions = p.add_subparsers(dest="masks_action", required=True, parser_class=_Parser)
    make = actions.add_parser("make", help="write the SYNTHETIC stand-in for the NVIDIA irregular test masks")
    make.add_argument("--out", required=True, help="output folder (new, empty, or a previous mask set)")
    make.add_argument("--size", type=int, default=256, help="mask side in pixels")
    make.add_argument("--per-bin", type=int, default=1000, help="masks per bin and margin group (1..1000)")
    make.add_argument("--margin", type=int, default=16, help="known border band of the 'with margin' group (px)")
    make.add_argument("--seed", type=int, default=0)
    info = actions.add_parser("info", help="count masks and mean hole ratio per bin in any mask folder")
    info.add_argument("dir", help="folder of mask images (white = hole)")
    info.add_argument("--size", type=int, default=256, help="nearest-resize masks to this side before measuring")
    p.set_defaults(func=_cmd_masks)


def _cmd_masks(args) -> None:
    import csv

    import numpy as np

    from .masks import MaskFolder, describe_ratios, make_test_masks

    if args.masks_action == "info":
        folder = MaskFolder(args.dir, args.size)
        ratios = folder.measure_ratios(progress=True)
        print(f"{len(folder)} masks in {args.dir}, measured at {args.size}x{args.size}")
        print(describe_ratios(ratios))
        return
    out = make_test_masks(args.out, args.size, args.per_bin, args.margin, args.seed)
    with open(out / "index.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    print(f"wrote {len(rows)} SYNTHETIC masks to {out} (stand-ins, NOT the NVIDIA irregular mask test set)")
    for margin in sorted({row["border_margin"] for row in rows}, key=int, reverse=True):
        print(f"border margin {margin} px:")
        print(describe_ratios(np.array([float(row["hole_ratio"]) for row in rows if row["border_margin"] == margin])))


def _add_ship(sub) -> None:
    p = sub.add_parser("ship", help="turn a training checkpoint into shipped fp16 weights + a model card")
    p.add_argument("checkpoint", help="inpaintlab training checkpoint (its EMA generator is shipped)")
    p.add_argument(
        "--card",
        required=True,
        help="JSON file with the card's fields (summary, inference_size, "
        "default_strategy, data, wall time, held-out table, commands)",
    )
    p.add_argument("--out", help="folder (default: the package's weights folder, what `pretrained=True` reads)")
    p.add_argument(
        "--recalibrate-bn",
        type=int,
        default=0,
        metavar="BATCHES",
        help="re-estimate BatchNorm statistics of the EMA generator on this many training batches of "
        "the run's own data (default 0 = keep the checkpoint's)",
    )
    p.set_defaults(func=_cmd_ship)


def _cmd_ship(args) -> None:
    import json
    from pathlib import Path

    from .pretrained import WEIGHTS_DIR
    from .shipping import write_pretrained

    path = Path(args.card)
    if not path.is_file():
        raise InpaintlabError(f"card file {path} not found; expected a JSON object of card fields")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InpaintlabError(f"card file {path} is not JSON: {err}") from None
    required = ("summary", "inference_size")
    if not isinstance(card, dict) or any(k not in card for k in required):
        raise InpaintlabError(f"card file {path} must be a JSON object with at least {', '.join(required)}")
    weights, card_path = write_pretrained(args.checkpoint, args.out or WEIGHTS_DIR, card, args.recalibrate_bn)
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB) and {card_path}")


def _add_ship_continued(sub) -> None:
    p = sub.add_parser(
        "ship-continued",
        help="ship a continuation of the shipped default only if neither held-out PSNR nor detail ratio falls "
        "and it keeps the card's promises (promises.py); record it in the card's ledger either way",
    )
    p.add_argument("checkpoint", help="the continuation's final checkpoint (its EMA generator)")
    p.add_argument("--eval", required=True, help="inpaintlab eval folder with rows NAME, candidate (and telea)")
    p.add_argument(
        "--candidate",
        default="candidate",
        help="the checkpoint's row in --eval (default 'candidate'; one folder may score several continuations)",
    )
    p.add_argument("--name", default=None, help="the shipped model continued (default: the shipped default)")
    p.add_argument("--hours", type=float, default=None, help="the segment's training wall time, for the ledger")
    p.add_argument("--out", help="weights folder (default: the package's)")
    p.set_defaults(func=_cmd_ship_continued)


def _cmd_ship_continued(args) -> None:
    from .ledger import ship_continued
    from .pretrained import DEFAULT_MODEL, WEIGHTS_DIR

    shipped, why = ship_continued(
        args.checkpoint,
        args.eval,
        args.name or DEFAULT_MODEL,
        args.out or WEIGHTS_DIR,
        args.hours,
        candidate_label=args.candidate,
    )
    print(why)


def _add_continue(sub) -> None:
    p = sub.add_parser("continue", help="one segment of the shipped default: train, evaluate, ship by the ledger's rule")
    p.add_argument("--name", default=None, help="the shipped model continued (default: the shipped default)")
    p.add_argument("--preset", default=None, help="the recipe (default lgnet_compact_texture_x3)")
    p.add_argument("--runs", default="~/runs", help="parent of the run folder (default ~/runs)")
    p.add_argument("--split", default=None, help="folder of the split's lists (default RUNS/split)")
    p.add_argument("--data", default=None, help="dataset folder to make the split from when it is missing")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], help="mixed precision (overrides the recipe)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--no-ship", action="store_true", help="train and evaluate only; the ledger and weights stay")
    p.add_argument("--plan", action="store_true", help="print the run folder of the next segment and stop")
    p.set_defaults(func=_cmd_continue)


def _cmd_continue(args) -> None:
    import json
    from pathlib import Path

    import torch

    from .continuation import DEFAULT_RECIPE, plan_segment, run_segment
    from .pretrained import DEFAULT_MODEL

    name, preset = args.name or DEFAULT_MODEL, args.preset or DEFAULT_RECIPE
    if args.plan:
        return print(plan_segment(name, preset, args.runs, args.overrides)[0])
    split = args.split or Path(args.runs).expanduser() / "split"
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    common = dict(split=split, runs=args.runs, data=args.data, overrides=args.overrides, amp=args.amp, device=device)
    result = run_segment(name, preset, **common, ship=not args.no_ship)
    print(json.dumps({k: result[k] for k in ("heldout", "verdicts")}, indent=1))
    print(f"wrote {result['run']}/segment.json")


def _add_strategies(sub) -> None:
    p = sub.add_parser("strategies", help="object removal at a photo's own size: pad/resize/crop vs Telea")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", help="a model with weights (default: the shipped default)")
    which.add_argument("--checkpoint", help="inpaintlab checkpoint file")
    p.add_argument(
        "--images",
        default="builtin",
        help="'builtin' (the built-in test photos at their own size, plus smooth backgrounds at 512) or a folder/.txt list",
    )
    p.add_argument("--every", type=positive_int, default=1, help="take every N-th image of --images (default 1: all)")
    p.add_argument(
        "--strategies",
        default="pad,resize,crop,detail",
        help="comma-separated strategies of the network alone (default pad,resize,crop,detail; pad is slow on large photos)",
    )
    p.add_argument(
        "--detail-strengths",
        default="",
        help="also run detail at these strengths, as rows detail@S (e.g. 0.5,0.75)",
    )
    p.add_argument("--ratios", default="0.1,0.25,0.4", help="object-hole ratios (default 0.1,0.25,0.4)")
    p.add_argument("--seeds", type=int, default=2, help="holes per picture and ratio (default 2)")
    p.add_argument(
        "--size", type=int, default=None, help="working side of resize/crop (default: the model's card or training size)"
    )
    p.add_argument("--out", required=True, help="folder for strategies.json and strategies.md")
    p.set_defaults(func=_cmd_strategies)


def _cmd_strategies(args) -> None:
    import json
    from pathlib import Path

    from .pretrained import DEFAULT_MODEL
    from .resolve import resolve_model
    from .strategy_check import compare_strategies, markdown, strategy_pictures, strategy_pipes

    model = resolve_model(args.checkpoint or args.model or DEFAULT_MODEL)
    pictures = strategy_pictures(args.images, args.every)
    strengths = [float(v) for v in args.detail_strengths.split(",") if v.strip()]
    pipes = strategy_pipes(model, [s.strip() for s in args.strategies.split(",") if s.strip()], strengths, args.size)
    report = compare_strategies(pipes, pictures, [float(r) for r in args.ratios.split(",") if r.strip()], args.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "strategies.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (out / "strategies.md").write_text(table + "\n")
    print("hole MAE (0-255, lower is better) / whole-image PSNR (dB); object-shaped holes")
    print(table)


def _add_split(sub) -> None:
    p = sub.add_parser("split", help="deterministic training / held-out file lists of a dataset folder")
    p.add_argument("root", nargs="?", help="folder of image folders and mask folders (masks*); default $INPAINTLAB_DATA")
    p.add_argument("--out", required=True, help="folder for train/heldout_{images,masks}.txt and split.json")
    p.add_argument("--image-fraction", type=float, default=0.1, help="share of each image folder held out (0.1)")
    p.add_argument("--masks-per-bin", type=int, default=200, help="held-out masks per hole-ratio bin (200)")
    p.add_argument("--size", type=int, default=256, help="side at which mask hole ratios are measured (256)")
    p.set_defaults(func=_cmd_split)


def _cmd_split(args) -> None:
    import json
    import os

    from .splits import DATA_ENV, make_split

    root = args.root or os.environ.get(DATA_ENV)
    if not root:
        raise InpaintlabError(f"give the dataset folder as an argument or set ${DATA_ENV}")
    summary = make_split(root, args.out, args.image_fraction, args.masks_per_bin, args.size)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("images", "masks")}, indent=2))
    print(f"wrote {args.out}/{{train,heldout}}_{{images,masks}}.txt and split.json")


def _add_gpu_check(sub) -> None:
    p = sub.add_parser("gpu-check", help="the one prepared GPU run: gpu-check OUT [--smoke] (docs/gpu.md)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of python -m inpaintlab.gpu_check")
    p.set_defaults(func=_cmd_gpu_check)


def _cmd_gpu_check(args) -> None:
    """``python -m inpaintlab.gpu_check`` in a child process: the check runs CLI commands itself, so the CLI
    never imports it (no import circle)."""
    import subprocess

    code = subprocess.call([sys.executable, "-m", "inpaintlab.gpu_check", *args.rest])
    if code:
        raise SystemExit(code)


# ----------------------------------------------------------------------------------------------- main

_SUBCOMMANDS = [
    _add_models,
    _add_masks,
    _add_split,
    _add_ship,
    _add_ship_continued,
    _add_continue,
    _add_strategies,
    _add_bench,
    _add_eval,
    _add_demo,
    _add_train,
    _add_attention,
    _add_fill,
    _add_serve,
    _add_export,
    _add_gpu_check,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inpaintlab", description=__doc__.splitlines()[0])
    from .version import __version__

    parser.add_argument("--version", action="version", version=f"inpaintlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except InpaintlabError as err:
        print(f"inpaintlab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inpaintlab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
