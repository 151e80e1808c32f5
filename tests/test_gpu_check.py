"""The prepared GPU run (``inpaintlab.gpu_check``, docs/gpu.md): its CPU smoke mode end to end, its data
helper and its guards. The smoke run goes through ``scripts/gpu_check.sh`` exactly as the GPU run does,
on a data folder made by ``prepare_data`` from a small fake dataset (photos + binned masks), so the
paths, list files, CLI calls, resume, eval, torchrun (gloo) and the report are the ones the GPU run uses.
"""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpaintlab import gpu_check
from inpaintlab.data import synthetic_images
from inpaintlab.errors import InpaintlabError
from inpaintlab.gpu_check.plan import cpu_has_bf16
from inpaintlab.masks import HOLE_RATIO_BINS, bin_stroke_mask, ratio_bin
from inpaintlab.splits import make_split

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("environment", "contract", "bench", "train", "continue_default")


def _fake_dataset(root: Path) -> Path:
    """Two photo folders (18 + 18 procedural 80x80 images) and a mask folder with 3 masks per hole-ratio bin."""
    images = synthetic_images(36, 80, seed=3)
    for k, (name, rgb) in enumerate(images):
        folder = root / ("photos_a" if k % 2 else "photos_b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(folder / f"{name}.png")
    masks = root / "masks_fake"
    masks.mkdir()
    for k in range(len(HOLE_RATIO_BINS)):
        for j in range(3):
            Image.fromarray(bin_stroke_mask(256, k, np.random.default_rng([k, j])) * 255).save(masks / f"{k}{j:03d}.png")
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("gpu_data")
    split = base / "split"
    make_split(_fake_dataset(base / "dataset"), split, image_fraction=0.3, masks_per_bin=2, progress=False)
    gpu_check.prepare_data(base / "gpu_data", split=split, n_train=20, n_train_masks=5, masks_per_bin_small=1)
    return base / "gpu_data"


def _strict_load(path: Path) -> dict:
    def refuse(constant):
        raise ValueError(f"non-finite number {constant} in {path.name}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def smoke(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check_out")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out), "--smoke", "--data", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    return out, proc, _strict_load(out / gpu_check.REPORT_JSON)


def test_prepare_data_lists_relative_disjoint_and_binned(data_dir, tmp_path):
    manifest = json.loads((data_dir / "manifest.json").read_text())
    lists = {
        name: (data_dir / f"{name}.txt").read_text().split()
        for name in ("train_images", "heldout_images", "train_masks", "heldout_masks", "heldout_masks_small")
    }
    assert len(lists["train_images"]) == 20 and lists["heldout_images"] and len(lists["train_masks"]) == 5
    assert manifest["counts"] == {name: len(lines) for name, lines in lists.items()}
    for lines in lists.values():  # relative paths that resolve inside the folder: it works wherever it is carried
        assert all(not Path(line).is_absolute() and (data_dir / line).is_file() for line in lines)
    assert not set(lists["train_images"]) & set(lists["heldout_images"])
    assert not set(lists["train_masks"]) & set(lists["heldout_masks"])
    assert set(lists["heldout_masks_small"]) <= set(lists["heldout_masks"])
    bins = [
        ratio_bin(float((np.array(Image.open(data_dir / line).convert("L")) > 127).mean()))
        for line in lists["heldout_masks_small"]
    ]
    assert len(bins) == len(set(bins)) == len(HOLE_RATIO_BINS)  # one mask per bin, every bin present
    assert manifest["bytes"] == sum(
        (data_dir / line).stat().st_size
        for lines in (lists[k] for k in ("train_images", "heldout_images", "train_masks", "heldout_masks"))
        for line in lines
    )
    other = tmp_path / "not_ours"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(InpaintlabError, match="not a gpu_check data folder"):
        gpu_check.prepare_data(other, split=tmp_path)


def test_smoke_run_every_part_ok(smoke):
    out, proc, report = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["mode"] == "smoke" and report["finished"] and report["failures"] == []
    assert tuple(report["parts"]) == PARTS
    for key, part in report["parts"].items():
        assert part["status"] == "ok", (key, part)
        assert 0 <= part["seconds"] <= report["wall_s"] + 1
    assert report["wall_s"] < report["budget_s"]


def test_smoke_contract_and_bench_numbers(smoke):
    _, _, report = smoke
    contract = report["parts"]["contract"]["items"]
    assert tuple(contract) == gpu_check.SMOKE_MODELS
    for name, item in contract.items():
        assert item["params"] > 0 and item["hole_noise_max_abs"] <= 1e-5, name
        assert 0 < item["bf16_vs_fp32_hole_mean_abs"] < 0.05, name  # autocast really ran in bf16
        for precision in ("fp32", "bf16"):
            row = item[precision]
            assert row["finite"] and math.isfinite(row["loss"]) and row["fwd_bwd_ms"] > 0, (name, precision)
    # training (bench --train, parts 4-5) runs in bf16 only where bf16 is not emulated: ~30x slower than fp32
    train_amp = report["plan"]["train_amp"]
    assert train_amp == ("bf16" if cpu_has_bf16() else "none")
    bench = report["parts"]["bench"]["items"]
    assert tuple(bench) == gpu_check.SMOKE_MODELS[:2]
    for name, item in bench.items():
        assert item["cli"]["true_gmacs"] > 0 and item["cli"]["params"] == contract[name]["params"]
        assert item["latency_fp32"]["median_ms"] > 0 and item["latency_bf16"]["median_ms"] > 0
        assert item["throughput_bf16"]["images_per_s"] > 0 and item["throughput_bf16"]["batch"] == 2
        variants = item["train_step"]["variants"]
        assert set(variants) == ({"fp32", "bf16"} if train_amp == "bf16" else {"fp32"}), name
        assert all(row["images_per_s"] > 0 for row in variants.values())
        assert variants.get("bf16", {}).get("max_rel_diff_vs_fp32", 0) < 0.05


def test_smoke_train_resume_eval_and_torchrun(smoke):
    _, _, report = smoke
    items = report["parts"]["train"]["items"]
    assert list(items) == ["lgnet_tiny_builtin", "torchrun:lgnet_tiny_builtin"]
    preset = items["lgnet_tiny_builtin"]
    assert {k: v["rc"] for k, v in preset["steps"].items()} == {"train": 0, "resume": 0, "eval": 0}
    assert preset["train"]["last_step"] == 4 and preset["resume"]["to_step"] == 4
    assert preset["resume"]["compared_steps"] == [3, 4]
    assert preset["resume"]["g_total_rel_diff"] <= 1e-6  # a resumed CPU run continues the same trajectory
    overall = preset["eval"]["overall"]
    assert 5 < overall["psnr"] < 60 and 0 < overall["ssim"] <= 1 and overall["count"] > 0
    torchrun = items["torchrun:lgnet_tiny_builtin"]
    group = torchrun["distributed"]
    assert group["backend"] == "gloo" and group["world_size"] == 1 and group["all_reduce_ok"] and group["ddp_step_ok"]
    assert torchrun["train"]["last_step"] == 2 and math.isfinite(torchrun["eval"]["overall"]["psnr"])


def test_smoke_continue_default_and_output_limits(smoke):
    out, _, report = smoke
    item = report["parts"]["continue_default"]["items"]["lgnet_tiny"]
    assert item["train"]["rc"] == 0 and item["train"]["steps"] == 4
    before, after = item["shipped_eval"]["overall"], item["continued_eval"]["overall"]
    assert math.isfinite(before["psnr"]) and math.isfinite(after["psnr"])
    assert item["passes_ship_rule"] == (after["psnr"] >= before["psnr"] and after["detail"] >= before["detail"])
    assert item["ship_rule"].startswith("shipped" if item["passes_ship_rule"] else "refused")
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert all(p.parent == out for p in files)
    assert len(files) <= gpu_check.MAX_OUT_FILES and all(p.stat().st_size < gpu_check.MAX_FILE_BYTES for p in files)
    names = {p.name for p in files}
    assert {gpu_check.REPORT_JSON, gpu_check.REPORT_MD, gpu_check.LOG_TXT} <= names
    # which branch runs depends on 4 steps of training; both are also tested directly below
    if item["passes_ship_rule"]:
        assert set(item["returned"]) == {"lgnet_tiny.safetensors", "lgnet_tiny.json"} <= names
        card = json.loads((out / "lgnet_tiny.json").read_text())
        assert card["gpu_continuation"]["heldout_after"]["psnr"] == pytest.approx(after["psnr"])
    else:
        assert names == {gpu_check.REPORT_JSON, gpu_check.REPORT_MD, gpu_check.LOG_TXT}
    assert not Path(report["work_dir"]).exists()
    summary = (out / gpu_check.REPORT_MD).read_text()
    for heading in ("## Forward + backward", "## Benchmarks", "## Training:", "## Continue the shipped default"):
        assert heading in summary
    assert "| lgnet_tiny_builtin" not in summary or "failed" not in summary


def test_gpu_mode_without_cuda_skips_with_reasons(tmp_path):
    """On a machine without CUDA the GPU run records why, instead of crashing or pretending."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "inpaintlab.gpu_check",
            str(tmp_path / "out"),
            "--parts",
            "environment,contract,train",
            "--data",
            str(tmp_path / "absent"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    report = _strict_load(tmp_path / "out" / gpu_check.REPORT_JSON)
    assert proc.returncode == 1 and report["mode"] == "gpu"
    env_item = report["parts"]["environment"]["items"]["environment"]
    assert env_item["status"] == "failed" and "CUDA is not available" in env_item["error"]
    for key in ("contract", "train"):
        assert report["parts"][key]["status"] == "skipped" and "CUDA" in report["parts"][key]["reason"]
    assert "bench" not in report["parts"]


def test_guard_records_failures_and_runs_the_rest(tmp_path):
    plan = gpu_check.make_plan(gpu_check.build_parser().parse_args([str(tmp_path), "--smoke"]))
    report = gpu_check.Report(tmp_path, plan, ["test"])

    def body(part):
        part.item("breaks", lambda: 1 / 0)
        part.item("skips", lambda: (_ for _ in ()).throw(gpu_check.Skip("no weights here")))
        part.item("problem", lambda: {"value": 1.0, "problems": ["value too small"]})
        part.item("works", lambda: {"value": 2.0})
        part.item("late", lambda: {"value": 3.0}, need_s=3600)

    part = gpu_check.run_part(report, "demo", "a demo part", deadline=time.time() + 600, body=body)
    items = part.record["items"]
    assert part.record["status"] == "partial"
    assert items["breaks"]["status"] == "failed" and items["breaks"]["error"].startswith("ZeroDivisionError")
    assert items["skips"] == {"status": "skipped", "reason": "no weights here", "seconds": items["skips"]["seconds"]}
    assert items["problem"]["status"] == "failed" and items["problem"]["value"] == 1.0
    assert items["works"]["status"] == "ok" and items["works"]["value"] == 2.0
    assert items["late"]["status"] == "skipped" and "time budget" in items["late"]["reason"]
    saved = _strict_load(tmp_path / gpu_check.REPORT_JSON)
    assert saved["failures"] == ["demo/breaks: ZeroDivisionError: division by zero", "demo/problem: value too small"]
    assert "ZeroDivisionError" in (tmp_path / gpu_check.LOG_TXT).read_text()
    assert "| demo | partial |" in (tmp_path / gpu_check.REPORT_MD).read_text()


def test_returned_weights_are_the_checkpoint_ema_in_the_shipped_format(tmp_path):
    """The continue-default part's return path, run whatever the smoke's 4 steps did: the EMA generator
    in fp16 (not the live one, not a fresh model) and a card that records the continuation."""
    import torch
    from safetensors.torch import load_file

    from inpaintlab.checkpoint import save_checkpoint
    from inpaintlab.gpu_check.training import _return_weights
    from inpaintlab.models import create_model

    torch.manual_seed(0)
    live, ema = create_model("lgnet_tiny"), create_model("lgnet_tiny")
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(0.1 * torch.randn_like(p))
    tensors = {f"generator.{k}": v for k, v in live.state_dict().items()}
    tensors |= {f"generator_ema.{k}": v for k, v in ema.state_dict().items()}
    ckpt = save_checkpoint(tmp_path / "step_4.safetensors", tensors, {"model": {"name": "lgnet_tiny", "kwargs": {}}, "step": 4})
    out = tmp_path / "out"
    out.mkdir()
    before, after = {"psnr": 20.0, "count": 3}, {"psnr": 21.5, "count": 3}
    result = {
        "train": {"steps": 4, "seconds": 1.0},
        "batch": 2,
        "lr": 1e-4,
        "shipped_eval": {"overall": before},
        "continued_eval": {"overall": after},
    }
    card = {"name": "lgnet_tiny", "step": 100}
    returned = _return_weights(ckpt, out, card, result, ["python", "train", "--preset", "x"])
    assert returned == ["lgnet_tiny.safetensors", "lgnet_tiny.json"]
    shipped = load_file(str(out / "lgnet_tiny.safetensors"))
    assert all(v.dtype == torch.float16 for v in shipped.values() if v.is_floating_point())
    for name, value in ema.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(shipped[name].float(), value.half().float(), rtol=0, atol=0)
    assert any(
        not torch.equal(shipped[k].float(), v.half().float()) for k, v in live.state_dict().items() if v.is_floating_point()
    )
    create_model("lgnet_tiny").load_state_dict({k: v.float() for k, v in shipped.items()})
    new_card = json.loads((out / "lgnet_tiny.json").read_text())
    from inpaintlab.pretrained import file_sha256

    sha = file_sha256(out / "lgnet_tiny.safetensors")
    assert new_card["weights"] == {"file": "lgnet_tiny.safetensors", "dtype": "float16", "ema": True, "sha256": sha}
    assert new_card["step"] == 104 and new_card["model"]["name"] == "lgnet_tiny"
    assert new_card["gpu_continuation"]["heldout_before"] == before
    assert new_card["gpu_continuation"]["heldout_after"] == after
    assert new_card["gpu_continuation"]["command"] == "train --preset x"
