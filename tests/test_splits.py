"""Held-out split, native-scale crops with test-scale mask windows, and the training-step benchmark."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from inpaintlab import cli
from inpaintlab.bench import format_train_report, train_throughput
from inpaintlab.data import ImageDataset
from inpaintlab.errors import InpaintlabError
from inpaintlab.masks import MaskFolder, build_mask_source
from inpaintlab.presets import get_preset
from inpaintlab.splits import make_split


def _fake_dataset(root, photos_per_folder=60, masks_per_ratio=6):
    """Two photo folders of small PNGs and a mask folder with masks in all six bins (and one empty mask)."""
    rng = np.random.default_rng(0)
    for folder in ("textures", "scenes"):
        (root / folder).mkdir(parents=True)
        for i in range(photos_per_folder):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / folder / f"{folder}_{i:03d}.png")
    (root / "masks_real").mkdir()
    k = 0
    for ratio in (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.0):
        for _ in range(masks_per_ratio):
            mask = np.zeros((32, 32), np.uint8)
            mask.flat[: int(round(ratio * 1024))] = 255
            Image.fromarray(mask).save(root / "masks_real" / f"{k:05d}.png")
            k += 1


def _lines(path):
    return path.read_text().splitlines()


def test_split_is_disjoint_complete_deterministic_and_stable(tmp_path):
    _fake_dataset(tmp_path / "data")
    summary = make_split(tmp_path / "data", tmp_path / "a", image_fraction=0.2, masks_per_bin=4, size=32, progress=False)
    make_split(tmp_path / "data", tmp_path / "b", image_fraction=0.2, masks_per_bin=4, size=32, progress=False)
    for name in ("train_images", "heldout_images", "train_masks", "heldout_masks"):
        assert _lines(tmp_path / "a" / f"{name}.txt") == _lines(tmp_path / "b" / f"{name}.txt")
    train, held = set(_lines(tmp_path / "a" / "train_images.txt")), set(_lines(tmp_path / "a" / "heldout_images.txt"))
    assert not train & held and len(train | held) == 120
    for folder in ("textures", "scenes"):  # every image folder gives roughly its share
        assert 4 <= sum(f"/{folder}/" in p for p in held) <= 22
    mask_train, mask_held = set(_lines(tmp_path / "a" / "train_masks.txt")), set(_lines(tmp_path / "a" / "heldout_masks.txt"))
    assert not mask_train & mask_held and len(mask_train | mask_held) == 42
    assert len(mask_held) == 6 * 4  # 4 of the 6 masks of every bin; the empty masks are never held out
    held_ratios = MaskFolder(tmp_path / "a" / "heldout_masks.txt", 32).ratios
    assert np.histogram(held_ratios, bins=[0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])[0].tolist() == [4] * 6
    assert json.loads((tmp_path / "a" / "split.json").read_text())["heldout_masks"] == 24 == summary["heldout_masks"]
    # adding photos never moves an existing one to the other side
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "data" / "scenes" / "zz_new.png")
    make_split(tmp_path / "data", tmp_path / "c", image_fraction=0.2, masks_per_bin=4, size=32, progress=False)
    assert held <= set(_lines(tmp_path / "c" / "heldout_images.txt"))
    assert train <= set(_lines(tmp_path / "c" / "train_images.txt"))


def test_split_cli_reads_the_environment_and_names_bad_roots(tmp_path, monkeypatch, capsys):
    _fake_dataset(tmp_path / "data", photos_per_folder=5, masks_per_ratio=1)
    monkeypatch.setenv("INPAINTLAB_DATA", str(tmp_path / "data"))
    assert cli.main(["split", "--out", str(tmp_path / "s"), "--size", "32"]) == 0
    assert (tmp_path / "s" / "train_images.txt").is_file()
    assert cli.main(["split", str(tmp_path / "nope"), "--out", str(tmp_path / "t")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_crop_mode_cuts_windows_at_the_image_own_scale(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    dataset = ImageDataset([tmp_path / "a.png"], size=32, preprocess="crop")
    windows = set()
    for epoch in range(6):
        dataset.set_epoch(epoch)
        crop = (dataset[0].image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        found = [(t, l) for t in range(90 - 31) for l in range(120 - 31) if np.array_equal(rgb[t : t + 32, l : l + 32], crop)]
        assert len(found) == 1  # an exact window: no resampling
        windows.add(found[0])
    assert len(windows) > 1  # random per epoch


def test_masks_drawn_at_native_size_are_cropped_not_resized(tmp_path):
    mask = np.zeros((64, 64), np.uint8)
    mask[8:40, 20:28] = 255  # a 32 x 8 bar: resized to 16 px it would be 8 x 2
    Image.fromarray(mask).save(tmp_path / "00000.png")
    source = build_mask_source(str(tmp_path), size=16, drawn_size=64)
    widths = []
    for seed in range(10):
        window = source(np.random.default_rng(seed))[0].numpy().astype(np.uint8)
        assert window.shape == (16, 16) and window.any()  # windows are chosen to hold some hole
        matches = [(t, l) for t in range(49) for l in range(49) if np.array_equal(mask[t : t + 16, l : l + 16] > 127, window > 0)]
        assert matches  # an exact window of the 64-px mask
        widths.append(int((window.sum(axis=0) > 0).sum()))
    assert max(widths) == 8  # the bar keeps its 8-px width (resized to 16 px it would be 2)
    with pytest.raises(InpaintlabError, match="cannot be cropped"):
        build_mask_source(str(tmp_path), size=32, drawn_size=16)


def test_training_benchmark_reports_every_variant_with_loss_parity():
    cfg = dataclasses.replace(get_preset("lgnet_tiny_builtin"), batch_size=2)
    report = train_throughput(cfg, ("fp32", "bf16", "channels_last"), steps=1, warmup=1)
    rows = report["variants"]
    assert set(rows) == {"fp32", "bf16", "channels_last"}
    assert all(row["images_per_s"] > 0 for row in rows.values())
    assert rows["fp32"]["max_rel_diff_vs_fp32"] == 0
    assert rows["channels_last"]["max_rel_diff_vs_fp32"] < 1e-4  # same arithmetic, other layout
    assert 0 < rows["bf16"]["max_rel_diff_vs_fp32"] < 0.05  # bf16 really ran, and agrees
    table = format_train_report(report)
    assert "| bf16 |" in table and "lgnet_tiny" in table
    with pytest.raises(InpaintlabError, match="variants must combine"):
        train_throughput(cfg, ("fp8",))
