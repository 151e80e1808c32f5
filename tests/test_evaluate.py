"""evaluate.py + the eval/demo CLI: numbers against a manual recomputation, files, pairing, errors, DDP."""

from __future__ import annotations

import csv
import json
import os
import re
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from inpaintlab.checkpoint import save_checkpoint
from inpaintlab.cli import main
from inpaintlab.data import build_dataset
from inpaintlab.errors import InpaintlabError
from inpaintlab.evaluate import evaluate, evaluate_models, mask_groups
from inpaintlab.masks import BIN_SETS, HOLE_RATIO_BINS, MaskFolder, bin_label, bin_stroke_mask, hole_ratio, parse_bins, ratio_bin
from inpaintlab.metrics import METRICS
from inpaintlab.models import create_model
from inpaintlab.report import compare, paired_difference, save_comparison_grid
from inpaintlab.types import InpaintModel, InpaintOutput, composite

SIZE = 64
METRIC_NAMES = ("l1", "psnr", "ssim")


def _manual(model, pairs, metric_names=METRIC_NAMES):
    """Independent recomputation: per-pair metrics of the composite, grouped by ratio bin -> (bins, overall)."""
    rows = []
    for image, mask in pairs:
        pred = model(image[None], mask[None]).pred
        comp = composite(pred, image[None], mask[None])
        values = {m: float(METRICS[m](comp, image[None])[0]) for m in metric_names}
        rows.append((ratio_bin(hole_ratio(mask)), values))
    bins = {}
    for k in range(len(HOLE_RATIO_BINS)):
        members = [v for b, v in rows if b == k]
        if members:
            bins[bin_label(k)] = {m: np.mean([v[m] for v in members]) for m in metric_names} | {"count": len(members)}
    overall = {m: np.mean([v[m] for _, v in rows]) for m in metric_names} | {"count": len(rows)}
    return bins, overall


def _assert_same(report_part, expected):
    assert report_part["count"] == expected["count"]
    for name, value in expected.items():
        assert report_part[name] == pytest.approx(value, rel=1e-6), name


def test_generated_bins_match_manual_recomputation_and_files(tmp_path):
    images = build_dataset("synthetic:3", split="test", size=SIZE)
    out = tmp_path / "telea"
    report = evaluate(
        create_model("telea"),
        images,
        "bins",
        metrics=METRIC_NAMES,
        batch_size=4,
        out_dir=out,
        grid_size=5,
        progress=False,
        settings={"images_source": "synthetic:3"},
    )
    # documented protocol: mask j of bin k from default_rng([seed, k, j]), margin 0 (even j) / size//16 (odd j)
    pairs = []
    for i in range(3):
        for k in range(6):
            hole = bin_stroke_mask(SIZE, k, np.random.default_rng([0, k, i]), 0 if i % 2 == 0 else SIZE // 16)
            pairs.append((images[i].image, torch.from_numpy(hole).float()[None]))
    bins, overall = _manual(create_model("telea"), pairs)
    assert list(report["bins"]) == [bin_label(k) for k in range(6)] == list(bins)
    for label in bins:
        _assert_same(report["bins"][label], bins[label])
    _assert_same(report["overall"], overall)
    assert report["settings"]["images_source"] == "synthetic:3" and report["settings"]["seed"] == 0
    assert report["settings"]["masks"]["kind"] == "generated"

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["overall"] == pytest.approx(report["overall"]) and on_disk["bins"].keys() == bins.keys()
    for key in ("model", "code_version", "date", "feature_weights", "metrics", "bins"):
        assert key in on_disk["settings"]
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["bin"] for r in rows] == [*bins, "overall"]
    for row in rows:
        expected = overall if row["bin"] == "overall" else bins[row["bin"]]
        assert int(row["images"]) == expected["count"]
        assert float(row["psnr"]) == pytest.approx(expected["psnr"], rel=1e-6)
    md = (out / "metrics.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| metric"))
    assert header == "| metric | " + " | ".join([*bins, "overall"]) + " |"
    psnr_row = next(line for line in md if line.startswith("| psnr"))
    assert f"{overall['psnr']:.2f}" in psnr_row.split("|")[-2]
    for metric in METRIC_NAMES:
        assert Image.open(out / f"plot_{metric}.png").size[0] > 100
    grid = np.asarray(Image.open(out / "samples.png").convert("L"))
    tiles_h, tiles_w = 4 * (SIZE + 2), 5 * (SIZE + 2)  # 5 samples, rows input/mask/output/truth
    height, width = grid.shape
    assert height > tiles_h and width > tiles_w  # captions on top, row labels on the left
    assert (grid[: height - tiles_h] < 128).any() and (grid[:, : width - tiles_w] < 128).any()  # text drawn there
    mask_row = grid[height - tiles_h + (SIZE + 2) + 1 : height - tiles_h + 2 * (SIZE + 2) - 1, width - tiles_w + 1 :]
    assert set(np.unique(mask_row)) <= {0, 255}  # the tiles sit in the bottom-right block
    shown, per_image = report["samples"], {r["name"]: r for r in report["per_image"]}
    assert shown["rows"] == ["input (hole white)", "mask (white = hole)", "output (composite)", "ground truth"]
    assert shown["score"] == "psnr" and len(shown["columns"]) == 5
    for column in shown["columns"]:
        record = per_image[column["name"]]
        assert column["bin_label"] == record["bin_label"] and column["score"] == record["values"]["psnr"]


def _square(size, top, left, side):
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + side, left : left + side] = 255
    return mask


def test_mask_folder_pairs_image_i_with_mask_i_mod_n(tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    big = 2 * SIZE  # stored at 128 x 128, nearest-resized to 64 by MaskFolder
    Image.fromarray(_square(big, 0, 0, SIZE)).save(folder / "a.png")  # ratio 0.25
    Image.fromarray(_square(big, SIZE, SIZE, SIZE)).save(folder / "b.png")  # ratio 0.25, other place
    Image.fromarray(_square(big, 8, 8, SIZE // 2)).save(folder / "c.png")  # ratio 0.0625
    Image.fromarray(_square(big, 0, 0, 115)).save(folder / "d.png")  # ratio ~0.81: outside every bin
    images = build_dataset("synthetic:3", split="test", size=SIZE)
    masks = MaskFolder(folder, SIZE)
    report = evaluate(create_model("navier_stokes"), images, masks, metrics=("psnr", "mse"), batch_size=2, progress=False)
    a, b, c = (masks[i] for i in range(3))
    pairs = [(images[0].image, a), (images[1].image, b), (images[2].image, a)]  # bin (0.2,0.3]: i mod 2
    pairs += [(images[i].image, c) for i in range(3)]  # bin (0.01,0.1]: one mask
    bins, overall = _manual(create_model("navier_stokes"), pairs, ("psnr", "mse"))
    assert list(report["bins"]) == ["(0.01,0.1]", "(0.2,0.3]"] == sorted(bins)
    for label in bins:
        _assert_same(report["bins"][label], bins[label])
    _assert_same(report["overall"], overall)
    assert report["settings"]["masks"]["per_bin"]["(0.2,0.3]"] == 2
    assert [p["name"].rsplit("|", 1)[1] for p in report["per_image"] if p["bin_label"] == "(0.2,0.3]"] == [
        "mask 0",
        "mask 1",
        "mask 0",
    ]


def test_fixed_mask_sets():
    images = build_dataset("synthetic:5", split="test", size=SIZE)
    center = evaluate(create_model("telea"), images, "center", metrics=("l1",), progress=False)
    assert list(center["bins"]) == ["(0.2,0.3]"] and center["overall"]["count"] == 5
    circles = evaluate(create_model("telea"), images, "circles", metrics=("l1",), progress=False)
    assert list(circles["bins"]) == ["(0.01,0.1]"] and circles["overall"]["count"] == 5
    assert [p["name"].rsplit("|", 1)[1] for p in circles["per_image"]] == [f"mask {i % 4}" for i in range(5)]
    with pytest.raises(InpaintlabError, match=r"generated masks cover unions .* \(0.5,1\] is not one"):
        evaluate(create_model("telea"), images, "bins", bins=((0.0, 0.5), (0.5, 1.0)), progress=False)
    with pytest.raises(InpaintlabError, match="masks must be"):
        evaluate(create_model("telea"), images, "squares", progress=False)


class _Blocky(InpaintModel):
    """Needs H, W divisible by 16; predicts the per-image mean colour of the known pixels."""

    size_multiple = 16

    def forward(self, image, mask):
        assert image.shape[-1] % 16 == 0 and image.shape[-2] % 16 == 0
        valid = 1 - mask
        mean = (image * valid).sum((2, 3), keepdim=True) / valid.sum((2, 3), keepdim=True)
        return InpaintOutput(pred=mean.expand_as(image).clone())


def test_padding_to_size_multiple():
    images = build_dataset("synthetic:2", split="test", size=40)
    report = evaluate(_Blocky(), images, "center", metrics=("mse",), progress=False)
    # padding mirrors image and mask together (the pipeline's rule), so recompute on the padded pair
    expected = []
    for i in range(2):
        image = images[i].image[None]
        mask = torch.zeros(1, 1, 40, 40)
        mask[..., 10:30, 10:30] = 1
        both = torch.nn.functional.pad(torch.cat([image, mask], 1), (0, 8, 0, 8), mode="reflect")
        padded, pmask = both[:, :3], both[:, 3:]
        pred = _Blocky()(padded, pmask).pred[..., :40, :40]
        expected.append(float(METRICS["mse"](composite(pred, image, mask), image)[0]))
    assert report["overall"]["mse"] == pytest.approx(np.mean(expected), rel=1e-6)


def test_compare_and_evaluate_models(tmp_path):
    images = build_dataset("synthetic:2", split="test", size=SIZE)
    models = [("telea", create_model("telea")), ("ns", create_model("navier_stokes"))]
    reports = evaluate_models(models, images, "center", tmp_path, metrics=("psnr",), progress=False)
    table = compare(reports)
    rows = [line for line in table.splitlines() if line.startswith(("| telea", "| ns"))]
    assert len(rows) == 2
    best = max(r["overall"]["psnr"] for r in reports)
    assert f"**{best:.2f}**" in table
    readme = (tmp_path / "README.md").read_text()
    assert "| telea" in readme and "| ns" in readme and "plot_psnr.png" in readme
    for label in ("telea", "ns"):
        assert json.loads((tmp_path / label / "metrics.json").read_text())["settings"]["label"] == label
    assert (tmp_path / "plot_psnr.png").is_file()
    grid = np.asarray(Image.open(tmp_path / "samples.png"))  # every model on the same pairs, one row each
    single = np.asarray(Image.open(tmp_path / "telea" / "samples.png"))  # input, mask, output, ground truth
    assert grid.shape[0] == single.shape[0]  # input, telea, ns, ground truth: four rows of the same tiles
    assert abs(grid.shape[1] - single.shape[1]) < SIZE  # the same columns (the label margins differ)
    assert "![every model](samples.png)" in readme
    paired = paired_difference(reports[0], reports[1], "psnr")
    assert paired["mean"] == pytest.approx(reports[1]["overall"]["psnr"] - reports[0]["overall"]["psnr"])
    assert "## Paired differences to `telea`" in readme and f"| ns | {paired['mean']:+.3f} [" in readme


def _pairs_report(diffs_by_image: dict[str, list[float]], base: float = 20.0) -> tuple[dict, dict]:
    """Two reports of the same pairs whose psnr differs by the given amounts, pairs grouped by source image."""
    reference, candidate = [], []
    for image, diffs in diffs_by_image.items():
        for k, d in enumerate(diffs):
            name = f"{image}|(0.1,0.2]|mask {k}"
            reference.append({"name": name, "values": {"psnr": base}})
            candidate.append({"name": name, "values": {"psnr": base + d if d is not None else None}})
    return {"per_image": reference}, {"per_image": candidate}


def test_paired_difference_is_the_mean_over_shared_pairs_with_an_interval_over_images():
    """The mean difference over the pairs both rows scored (a pair without a value left out); the 95 %
    interval resamples source images, not pairs: two photos of 50 pairs each, one +1 dB and one -1 dB,
    give an interval of [-1, +1] (a bootstrap over the 100 pairs would claim about +-0.2)."""
    same = paired_difference(*_pairs_report({"a.png": [0.5] * 3, "b.png": [0.5, None]}), "psnr")
    assert same == {"mean": pytest.approx(0.5), "ci95": [pytest.approx(0.5), pytest.approx(0.5)], "pairs": 4, "images": 2}
    split = paired_difference(*_pairs_report({"dir|x/a.png": [1.0] * 50, "b.png": [-1.0] * 50}), "psnr")
    assert split["mean"] == pytest.approx(0.0) and split["ci95"] == [pytest.approx(-1.0), pytest.approx(1.0)]
    assert split["images"] == 2  # an image path may itself hold "|": the bin and mask are the last two fields
    reference, candidate = _pairs_report({"a.png": [0.1, 0.2]})
    with pytest.raises(InpaintlabError, match="same pairs"):
        paired_difference(reference, {"per_image": candidate["per_image"][:1]}, "psnr")


def test_compare_bolds_the_least_grid_and_no_ground_truth_reference():
    """The grid share is better low (a lattice in the fill), and the ground truth's own values are a reference
    that every model shares: no arrow and no bold, so the table never crowns the worst fill."""

    def report(label: str, grid: float) -> dict:
        values = {"detail": 2 * grid, "detail_gt": 1.05, "grid": grid, "grid_gt": 0.13}
        settings = {"metrics": list(values), "bin_labels": ["(0.01,0.1]"], "label": label, "model": label}
        return {"settings": settings, "bins": {}, "overall": values}

    table = compare([report("smooth", 0.45), report("lattice", 0.75)])
    assert "## grid (share) ↓" in table and "## detail (ratio) ↑" in table
    assert "## grid_gt (share)\n" in table and "## detail_gt (ratio)\n" in table
    assert "| smooth | **0.450** |" in table and "| lattice | 0.750 |" in table
    assert "| lattice | **1.500** |" in table  # detail: more is better
    assert "**1.050**" not in table and "**0.130**" not in table


def test_comparison_grid_rows_are_input_each_model_and_ground_truth(tmp_path):
    image, mask = torch.rand(3, 16, 16), torch.zeros(1, 16, 16)
    mask[:, 4:12, 4:12] = 1
    red, blue = (
        composite(torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 16, 16), image, mask),
        composite(torch.tensor([0, 0, 1.0]).view(3, 1, 1).expand(3, 16, 16), image, mask),
    )
    save_comparison_grid({"red": [(image, mask, red)], "blue": [(image, mask, blue)]}, tmp_path / "g.png")
    grid = np.asarray(Image.open(tmp_path / "g.png")).astype(int)
    assert grid.shape == (4 * 18, 18, 3)
    tile = lambda r: grid[r * 18 + 1 : r * 18 + 17, 1:17]  # noqa: E731
    assert (tile(0)[4:12, 4:12] == 255).all()  # input with the hole white
    assert (tile(1)[8, 8] == (255, 0, 0)).all() and (tile(2)[8, 8] == (0, 0, 255)).all()
    np.testing.assert_array_equal(tile(3), (image.permute(1, 2, 0) * 255).round().numpy())
    with pytest.raises(InpaintlabError, match="same masks"):
        save_comparison_grid({"a": [(image, mask, red)], "b": [(image, 1 - mask, blue)]}, tmp_path / "h.png")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir, result_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        images = build_dataset("synthetic:3", split="test", size=SIZE)
        report = evaluate(create_model("telea"), images, "bins", metrics=("psnr",), batch_size=2, out_dir=out_dir, progress=False)
        torch.save({"overall": report["overall"], "bins": report["bins"]}, f"{result_path}.{rank}")
        torch.distributed.barrier()  # leave together (see train.run_training)
    finally:
        torch.distributed.destroy_process_group()


def test_distributed_evaluation_matches_single_process(tmp_path):
    images = build_dataset("synthetic:3", split="test", size=SIZE)
    single = evaluate(create_model("telea"), images, "bins", metrics=("psnr",), progress=False)
    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out), str(tmp_path / "result")), nprocs=2)
    for rank in range(2):
        shard = torch.load(tmp_path / f"result.{rank}", weights_only=False)
        assert shard["overall"]["count"] == single["overall"]["count"] == 18
        assert shard["overall"]["psnr"] == pytest.approx(single["overall"]["psnr"], rel=1e-9)
        for label, values in single["bins"].items():
            assert shard["bins"][label]["psnr"] == pytest.approx(values["psnr"], rel=1e-9)
    assert json.loads((out / "metrics.json").read_text())["settings"]["world_size"] == 2


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_eval_one_and_two_models(tmp_path, capsys):
    base = ["eval", "--images", "synthetic:2", "--size", str(SIZE), "--metrics", "l1,psnr", "--masks", "center"]
    assert main([*base, "--model", "telea", "--out", str(tmp_path / "one")]) == 0
    report = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert report["settings"]["model"] == "telea" and report["settings"]["metrics"] == ["l1", "psnr"]
    assert "| psnr" in capsys.readouterr().out
    assert main([*base, "--model", "telea", "--model", "navier_stokes", "--out", str(tmp_path / "two")]) == 0
    assert (tmp_path / "two" / "telea" / "metrics.json").is_file()
    assert (tmp_path / "two" / "navier_stokes" / "samples.png").is_file()
    assert "| navier_stokes" in (tmp_path / "two" / "README.md").read_text()


def test_cli_eval_names_checkpoint_rows_with_label_equals_path(tmp_path):
    model = create_model("lgnet_tiny")
    header = {"model": {"name": "lgnet_tiny", "kwargs": {}}, "step": 3}
    paths = [
        save_checkpoint(
            tmp_path / f"run{k}" / "step_3.safetensors", {f"generator.{n}": v for n, v in model.state_dict().items()}, header
        )
        for k in (0, 1)
    ]
    base = ["eval", "--images", "synthetic:1", "--size", "64", "--metrics", "psnr", "--masks", "center"]
    assert (
        main(
            [
                *base,
                "--checkpoint",
                f"seed0={paths[0]}",
                "--checkpoint",
                f"seed1={paths[1]}",
                "--checkpoint",
                str(paths[0]),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    for label, path in (("seed0", paths[0]), ("seed1", paths[1]), ("step_3", paths[0])):
        report = json.loads((tmp_path / "out" / label / "metrics.json").read_text())
        assert report["settings"]["checkpoint"] == str(path)


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "not_an_image.png").write_text("hello")
    broken_masks = tmp_path / "broken_masks"
    broken_masks.mkdir()
    (broken_masks / "m.png").write_text("hello")
    ok = ["--images", "synthetic:2", "--masks", "center"]
    return {
        "missing image folder": ["--model", "telea", "--images", str(tmp_path / "nope"), "--masks", "center"],
        "empty image folder": ["--model", "telea", "--images", str(empty), "--masks", "center"],
        "non-image file": ["--model", "telea", "--images", str(broken), "--masks", "center"],
        "missing mask folder": ["--model", "telea", "--images", "synthetic:2", "--masks", str(tmp_path / "nope")],
        "empty mask folder": ["--model", "telea", "--images", "synthetic:2", "--masks", str(empty)],
        "non-image mask": ["--model", "telea", "--images", "synthetic:2", "--masks", str(broken_masks)],
        "unknown model": ["--model", "no_such_model", *ok],
        "unknown metric": ["--model", "telea", *ok, "--metrics", "psnr,bogus"],
        "missing checkpoint": ["--checkpoint", str(tmp_path / "x.safetensors"), *ok],
        "no model": ok,
    }


def test_cli_eval_bad_inputs_give_one_line_errors(tmp_path, capsys):
    for case, args in _bad_inputs(tmp_path).items():
        code = main(["eval", *args, "--size", str(SIZE), "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert code == 2, case
        assert err.startswith("inpaintlab: error:") and "\n" not in err, (case, err)


def test_cli_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--max-images", "2", "--size", str(SIZE)]) == 0
    assert str(out / "README.md") in capsys.readouterr().out
    readme = (out / "README.md").read_text()
    assert "| telea" in readme and "| navier_stokes" in readme
    report = json.loads((out / "telea" / "metrics.json").read_text())
    assert list(report["bins"]) == [bin_label(k) for k in range(6)]
    assert report["overall"]["count"] == 12  # 2 photos x 6 bins


def test_coarser_groups_draw_masks_from_the_bins_they_cover():
    """CICM's 0-20/20-40/40-60 % groups: every generated mask lies in its group, and both covered bins occur."""
    groups, settings = mask_groups("bins", SIZE, 24, bins=parse_bins("cicm"))
    assert [label for label, _, _ in groups] == ["(0,0.2]", "(0.2,0.4]", "(0.4,0.6]"]
    for (label, n, get), (lo, hi) in zip(groups, BIN_SETS["cicm"]):
        ratios = [get(j).mean().item() for j in range(n)]
        assert all(lo < r <= hi for r in ratios), label
        assert any(r <= (lo + hi) / 2 for r in ratios) and any(r > (lo + hi) / 2 for r in ratios)
    assert settings["standard_bins_per_group"]["(0.4,0.6]"] == [4, 5]
    single, _ = mask_groups("bins", SIZE, 3, bins=parse_bins("msanet"))
    reference, _ = mask_groups("bins", SIZE, 3)
    assert torch.equal(single[0][2](1), reference[1][2](1))  # (0.1,0.2] is standard bin 1, same masks
    with pytest.raises(InpaintlabError, match="bad --bins"):
        parse_bins("0.3-0.1")


def test_cli_eval_with_cicm_groups(tmp_path, capsys):
    out = tmp_path / "cicm"
    assert (
        main(
            [
                "eval",
                "--model",
                "telea",
                "--images",
                "synthetic:3",
                "--masks",
                "bins",
                "--bins",
                "cicm",
                "--size",
                str(SIZE),
                "--metrics",
                "psnr",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    header = (out / "metrics.md").read_text().splitlines()
    assert any("(0,0.2]" in line and "(0.2,0.4]" in line and "(0.4,0.6]" in line for line in header)


def test_reports_are_strict_json():
    """A 1-image group has no FID and an exact match has infinite PSNR: both are written as null."""
    from inpaintlab.report import strict_json

    text = strict_json({"fid": float("nan"), "bins": [{"psnr": float("inf")}, 1.5]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}")) == {
        "fid": None,
        "bins": [{"psnr": None}, 1.5],
    }


def test_reports_state_units_fixed_decimals_and_how_images_were_sized(tmp_path, capsys):
    """L1 is in %, PSNR in dB; each metric has one number format; the resize to the evaluation size is stated."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(2):
        Image.fromarray(np.full((48, 80, 3), 60 + 90 * k, np.uint8)).save(folder / f"p{k}.png")
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--model",
                "telea",
                "--images",
                str(folder),
                "--masks",
                "bins",
                "--size",
                str(SIZE),
                "--metrics",
                "l1,mse,psnr,ssim",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    report = json.loads((out / "metrics.json").read_text())
    assert report["settings"]["units"] == {"l1": "%", "mse": "", "psnr": "dB", "ssim": ""}
    assert report["settings"]["images"]["preparation"] == (
        f"Whole image resized to {SIZE}x{SIZE} (bicubic, PIL antialiased; aspect ratio not kept)"
    )
    md = (out / "metrics.md").read_text()
    assert f"Images: Whole image resized to {SIZE}x{SIZE}" in md and "L1 = mean absolute error in %" in md
    assert f"Masks: drawn at {SIZE}x{SIZE}" in md
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in md.splitlines() if line.startswith("| ")}
    decimals = {"l1 (%) ↓": 2, "mse ↓": 5, "psnr (dB) ↑": 2, "ssim ↑": 4}
    for label, places in decimals.items():
        assert rows[label], label
        for cell in rows[label]:
            assert re.fullmatch(rf"\d+\.\d{{{places}}}", cell.strip()), (label, cell)
    from torch.utils.data import Subset

    from inpaintlab.evaluate import dataset_preparation

    builtin = build_dataset("builtin", split="test", size=SIZE)
    assert dataset_preparation(Subset(builtin, [0])).startswith("Built-in photos: short side resized (bicubic)")
    assert "## l1 (%) ↓" in compare([report, report])


def test_evaluation_and_the_pipeline_pad_the_same_way():
    """One padding rule: the evaluator and the pipeline hand the model the same padded image and mask."""
    from inpaintlab.evaluate import _padded_forward
    from inpaintlab.pipeline import InpaintPipeline

    class Recorder(InpaintModel):
        size_multiple = 16

        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, image, mask):
            self.calls.append((image.clone(), mask.clone()))
            return InpaintOutput(pred=torch.zeros_like(image))

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 37, 3), dtype=np.uint8)
    hole = np.zeros((40, 37), np.uint8)
    hole[30:40, 5:20] = 255  # touches the bottom border: the padded band must stay a hole
    recorder = Recorder()
    InpaintPipeline(recorder, strategy="pad")(pixels, hole)
    image = torch.from_numpy(pixels).permute(2, 0, 1).float()[None] / 255
    mask = torch.from_numpy(hole > 127).float()[None, None]
    _padded_forward(recorder, image, mask)
    (pipe_image, pipe_mask), (eval_image, eval_mask) = recorder.calls
    assert pipe_image.shape == eval_image.shape == (1, 3, 48, 48)
    assert torch.equal(pipe_mask, eval_mask) and pipe_mask[0, 0, 40:, 5:20].eq(1).all()
    known = eval_mask.expand_as(eval_image) == 0
    assert torch.allclose(pipe_image[known], eval_image[known], atol=1e-6)
