"""Shipped weights: a checkpoint is shipped with a card, loads through every public path, and untrained
networks never answer a user. The last tests hold the real shipped default to its promises."""

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from inpaintlab import InpaintPipeline, cli, create_model, load_model, pretrained
from inpaintlab.checkpoint import read_header
from inpaintlab.errors import InpaintlabError
from inpaintlab.presets import get_preset
from inpaintlab.serve import ModelCatalog, create_app
from inpaintlab.train import run_training


def _tiny_run(out, steps, **changes):
    """``steps`` steps of the LGNet toy recipe with EMA (decay 0.5) and ``changes``; its final checkpoint."""
    base = get_preset("lgnet_tiny_builtin")
    cfg = dataclasses.replace(
        base,
        max_steps=steps,
        batch_size=2,
        ema_decay=0.5,
        val_every=0,
        image_every=0,
        ckpt_every=0,
        data=dataclasses.replace(base.data, val_count=0),
        **changes,
    )
    run_training(cfg, out)
    return out / "checkpoints" / f"step_{steps:08d}.safetensors"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """Two steps of the LGNet toy recipe with EMA: a real training checkpoint."""
    return _tiny_run(tmp_path_factory.mktemp("run"), 2)


@pytest.fixture
def shipped(tiny_checkpoint, tmp_path, monkeypatch):
    """``lgnet_tiny`` shipped (through the CLI) into a temporary weights folder that the package reads."""
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path / "weights")
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"summary": "two toy steps", "inference_size": 64, "default_strategy": "resize"}))
    assert cli.main(["ship", str(tiny_checkpoint), "--card", str(card), "--out", str(tmp_path / "weights")]) == 0
    return tmp_path / "weights"


def _picture_and_hole(size=64):
    picture = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    hole = np.zeros((size, size), bool)
    hole[16:40, 20:44] = True
    return picture, hole


def test_ship_writes_fp16_ema_weights_and_a_card(shipped, tiny_checkpoint):
    card = json.loads((shipped / "lgnet_tiny.json").read_text())
    assert card["model"] == {"name": "lgnet_tiny", "kwargs": {}} and card["step"] == 2
    sha256 = pretrained.file_sha256(shipped / "lgnet_tiny.safetensors")
    assert card["weights"] == {"file": "lgnet_tiny.safetensors", "dtype": "float16", "ema": True, "sha256": sha256}
    assert card["summary"] == "two toy steps" and card["inference_size"] == 64
    with safe_open(str(shipped / "lgnet_tiny.safetensors"), "pt") as handle:
        dtypes = {handle.get_tensor(k).dtype for k in handle.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    assert (shipped / "lgnet_tiny.safetensors").stat().st_size < tiny_checkpoint.stat().st_size / 4


def test_ema_averages_batchnorm_statistics_like_the_weights(tiny_checkpoint):
    from inpaintlab.checkpoint import load_checkpoint, sub_state

    tensors, header = load_checkpoint(tiny_checkpoint)
    live, ema = sub_state(tensors, "generator"), sub_state(tensors, "generator_ema")
    means = [k for k in live if k.endswith("running_mean")]
    assert means and all(not torch.equal(live[k], ema[k]) for k in means)  # not copied from the live model
    assert all(torch.equal(live[k], ema[k]) for k in live if k.endswith("num_batches_tracked"))


def test_ship_can_recalibrate_batchnorm_on_the_run_own_data(tiny_checkpoint, tmp_path):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"summary": "s", "inference_size": 64}))
    assert (
        cli.main(["ship", str(tiny_checkpoint), "--card", str(card), "--out", str(tmp_path / "w"), "--recalibrate-bn", "2"]) == 0
    )
    shipped = json.loads((tmp_path / "w" / "lgnet_tiny.json").read_text())
    assert shipped["batchnorm"]["recalibrated_batches"] == 2 and shipped["batchnorm"]["layers"] > 10
    with safe_open(str(tmp_path / "w" / "lgnet_tiny.safetensors"), "pt") as handle:
        ours = {k: handle.get_tensor(k) for k in handle.keys()}
    reference = load_model(tiny_checkpoint).state_dict()  # the EMA weights: unchanged; BN statistics: new
    assert all(torch.equal(ours[k], reference[k].half()) for k in reference if k.endswith(".weight"))
    means = [k for k in reference if k.endswith("running_mean")]
    assert all(not torch.equal(ours[k], reference[k].half()) for k in means)
    # The statistics, re-derived here: the first BatchNorm's input on the run's own two training batches (the
    # layers before it have no BatchNorm), averaged over the batches (momentum None), unbiased variance.
    from inpaintlab.data import build_dataset, collate_samples
    from inpaintlab.masks import build_mask_source

    config = read_header(tiny_checkpoint)["config"]
    data, masks = config["data"], config["masks"]
    source = build_mask_source(masks["source"], data["size"], margin=masks["margin"], drawn_size=masks["drawn_size"])
    dataset = build_dataset(
        data["root"], size=data["size"], preprocess=data["preprocess"], flip=data["flip"], mask_source=source, seed=0
    )
    order = np.random.default_rng(0).permutation(len(dataset))
    model = load_model(tiny_checkpoint)
    name, first = next((n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    first.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    size = config["batch_size"]
    with torch.no_grad():
        for b in range(2):
            batch = collate_samples([dataset[int(order[(b * size + i) % len(order)])] for i in range(size)])
            model(batch.image, batch.mask)
    mean = torch.stack([x.mean(dim=(0, 2, 3)) for x in seen[:2]]).mean(0)
    var = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for x in seen[:2]]).mean(0)
    torch.testing.assert_close(ours[f"{name}.running_mean"].float(), mean, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(ours[f"{name}.running_var"].float(), var, atol=2e-3, rtol=2e-3)


def test_pretrained_model_is_the_checkpoint_ema_in_fp16(shipped, tiny_checkpoint):
    model = create_model("lgnet_tiny", pretrained=True)
    reference = load_model(tiny_checkpoint)  # EMA weights, fp32
    for (name, ours), theirs in zip(model.state_dict().items(), reference.state_dict().values()):
        if ours.is_floating_point():
            assert torch.equal(ours, theirs.half().float()), name
    image, mask = torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    mask[..., 10:30, 10:30] = 1
    with torch.no_grad():
        ours, theirs = model(image, mask).pred, reference(image, mask).pred
    assert theirs.std() > 1e-3  # the output varies: a constant could not pass the tolerance below
    torch.testing.assert_close(ours, theirs, atol=1e-3, rtol=0)  # fp16 weights: measured error ~4e-6
    assert not model.training and model.checkpoint_header["inference_size"] == 64


def test_pretrained_refuses_other_options_and_names_without_weights(shipped):
    with pytest.raises(InpaintlabError, match="was trained with"):
        create_model("lgnet_tiny", pretrained=True, ngf_unet=16)
    with pytest.raises(InpaintlabError, match="'lgnet' has no shipped weights; models with weights: lgnet_tiny"):
        create_model("lgnet", pretrained=True)


def test_models_cli_marks_the_names_with_weights(shipped, capsys):
    assert cli.main(["models", "lgnet*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("* lgnet_tiny  [trained weights") and "two toy steps" in line for line in lines)
    assert "  lgnet" in lines  # no weights: listed without the mark


def test_pipeline_takes_strategy_and_size_from_the_card(shipped):
    pipe = InpaintPipeline.from_pretrained("lgnet_tiny")
    assert pipe.strategy == "resize" and pipe.train_size == 64
    picture, hole = _picture_and_hole(96)
    result = pipe(picture, hole)
    assert result.shape == picture.shape and np.array_equal(result[~hole], picture[~hole])


def test_untrained_networks_are_refused_by_every_tool(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path / "empty")
    for call in (
        lambda: InpaintPipeline.from_checkpoint("lgnet_tiny"),
        lambda: ModelCatalog(["lgnet_tiny"]),
        lambda: InpaintPipeline.from_pretrained("lgnet_tiny"),
    ):
        with pytest.raises(InpaintlabError, match="lgnet_tiny"):
            call()
    picture, hole = _picture_and_hole()
    Image.fromarray(picture).save(tmp_path / "a.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "m.png")
    for argv in (
        [
            "fill",
            str(tmp_path / "a.png"),
            "--mask",
            str(tmp_path / "m.png"),
            "--model",
            "lgnet_tiny",
            "-o",
            str(tmp_path / "out.png"),
        ],
        ["eval", "--model", "lgnet_tiny", "--images", "synthetic:2", "--masks", "center", "--out", str(tmp_path / "e")],
        ["serve", "--model", "lgnet_tiny", "--port", "1"],
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "lgnet_tiny is a network without trained weights" in err and "telea (classical)" in err
    assert not (tmp_path / "out.png").exists()


def test_fill_without_model_uses_the_shipped_default_and_keeps_alpha(shipped, tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "DEFAULT_MODEL", "lgnet_tiny")
    picture, hole = _picture_and_hole()
    alpha = np.full((64, 64, 1), 200, np.uint8)
    alpha[:8] = 0
    Image.fromarray(np.concatenate([picture, alpha], axis=2), "RGBA").save(tmp_path / "a.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "m.png")
    assert cli.main(["fill", str(tmp_path / "a.png"), "--mask", str(tmp_path / "m.png"), "-o", str(tmp_path / "o.png")]) == 0
    result = np.asarray(Image.open(tmp_path / "o.png"))
    assert result.shape == (64, 64, 4) and np.array_equal(result[:, :, 3], alpha[:, :, 0])
    expected = np.asarray(InpaintPipeline.from_pretrained("lgnet_tiny")(picture, hole))
    np.testing.assert_array_equal(result[:, :, :3], expected)


def test_server_offers_the_shipped_default_first_and_labels_kinds(shipped, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setattr(pretrained, "DEFAULT_MODEL", "lgnet_tiny")
    with TestClient(create_app(), base_url="http://127.0.0.1") as client:
        info = client.get("/api/models").json()
    assert info["default_model"] == "lgnet_tiny"
    assert [(m["name"], m["source"]) for m in info["models"]] == [
        ("lgnet_tiny", "pretrained"),
        ("telea", "classical"),
        ("navier_stokes", "classical"),
    ]


# ------------------------------------------------------------------------ the real shipped default model


def test_the_shipped_default_loads_offline_with_its_card():
    from inpaintlab.bench import count_parameters

    name = pretrained.DEFAULT_MODEL
    assert name in pretrained.pretrained_models()
    card = pretrained.model_card(name)
    for key in ("summary", "inference_size", "default_strategy", "data", "training", "heldout", "commands"):
        assert key in card, key
    model = create_model(name, pretrained=True)
    assert count_parameters(model)["total"] == card["parameters"]
    assert (pretrained.WEIGHTS_DIR / f"{name}.safetensors").stat().st_size < 20e6
    pipe = InpaintPipeline.from_pretrained()
    assert pipe.model.model_name == name and pipe.strategy == card["default_strategy"]


@pytest.mark.parametrize("promise", ["smooth_backgrounds", "smooth_backgrounds_network_alone", "free_form_photos"])
def test_the_shipped_default_keeps_its_cards_promises(promise):
    """The real shipped file, held to what its card promises (``promises.py``), the checks ``ship-continued``
    runs on every candidate. Measured with the shipped weights: smooth backgrounds within Telea + 1.5 grey
    levels with the card's smooth-region rule; the network's own fill up to 8.5 above Telea on flat colour
    and sky (a network answering flat grey is ~100 above); free-form holes in the built-in photos 22.9 dB
    against Telea's 22.2, detail ratio 0.28 against 0.24."""
    from inpaintlab.promises import broken_promises

    name = pretrained.DEFAULT_MODEL
    assert promise in pretrained.model_card(name)["promises"]
    assert broken_promises(create_model(name, pretrained=True), [promise]) == []


def test_the_promises_catch_a_network_that_answers_flat_grey():
    """The checks can fail: the shipped default with its last layers' weights zeroed (a constant fill) breaks
    the network-alone promises, and each broken part is named."""
    from inpaintlab.promises import broken_promises

    model = create_model(pretrained.DEFAULT_MODEL, pretrained=True)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    broken = broken_promises(model, ["smooth_backgrounds_network_alone", "free_form_photos"])
    assert any(s.startswith("the network alone on flat with a 40% hole") for s in broken), broken
    assert any("free-form holes in the built-in photos" in s and " dB, needs more than" in s for s in broken), broken
    with pytest.raises(InpaintlabError, match="unknown promise 'sharp'"):
        broken_promises(model, ["sharp"])


def test_ship_continued_reads_the_named_candidate_row(shipped, tiny_checkpoint, tmp_path):
    """One eval folder may score several continuations: ``--candidate LABEL`` picks the checkpoint's row, so a
    worse row beside it neither ships nor enters the ledger."""
    eval_dir = _fake_eval(tmp_path / "eval", {"lgnet_tiny": (25.2, 0.30), "heavy": (25.1, 0.40), "mild": (25.4, 0.31)})
    args = ["ship-continued", str(tiny_checkpoint), "--eval", str(eval_dir), "--name", "lgnet_tiny", "--out", str(shipped)]
    assert cli.main([*args, "--candidate", "heavy"]) == 0
    assert cli.main([*args, "--candidate", "mild"]) == 0
    rows = json.loads((shipped / "lgnet_tiny.json").read_text())["ledger"][1:]
    assert [(r["heldout"]["psnr"], r["shipped"]) for r in rows] == [(25.1, False), (25.4, True)]
    assert cli.main([*args, "--candidate", "missing"]) != 0  # a clear error naming the row, nothing recorded
    assert len(json.loads((shipped / "lgnet_tiny.json").read_text())["ledger"]) == 3


def test_a_shipped_segment_with_other_options_updates_the_cards_network(shipped, tmp_path):
    """A continuation on LGNet's resize-conv variant (``adopt_weights`` from the shipped transposed weights)
    ships with the card's model options, parameter count and discriminator taken from its own config, so the
    shipped weights load as the network they are; the ledger row names the options."""
    from inpaintlab.bench import count_parameters

    card_path = shipped / "lgnet_tiny.json"
    card = json.loads(card_path.read_text())
    card["architecture"] = {"paper": "LGNet", "model": {"name": "lgnet_tiny", "kwargs": {}}, "parameters": 1}
    card["parameters"] = 1
    card_path.write_text(json.dumps(card))
    base = get_preset("lgnet_tiny_builtin").model
    model = dataclasses.replace(base, kwargs={"upsample": "resize_conv"}, discriminator_kwargs={"ndf": 8})
    checkpoint = _tiny_run(tmp_path / "run", 1, model=model, init_from="pretrained:lgnet_tiny")
    eval_dir = _fake_eval(tmp_path / "eval", {"lgnet_tiny": (25.2, 0.30), "candidate": (25.3, 0.31)})
    args = ["ship-continued", str(checkpoint), "--eval", str(eval_dir), "--name", "lgnet_tiny", "--out", str(shipped)]
    assert cli.main(args) == 0
    card = json.loads(card_path.read_text())
    assert card["model"]["kwargs"] == {"upsample": "resize_conv"} and card["ledger"][-1]["shipped"]
    assert card["ledger"][-1]["recipe"]["model_kwargs"] == {"upsample": "resize_conv"}
    loaded = create_model("lgnet_tiny", pretrained=True)
    assert card["parameters"] == card["architecture"]["parameters"] == count_parameters(loaded)["total"]
    assert card["parameters"] < count_parameters(create_model("lgnet_tiny"))["total"]  # 3x3 instead of 4x4 taps
    assert card["architecture"]["model"]["discriminator_kwargs"] == {"ndf": 8} and card["architecture"]["paper"] == "LGNet"


def test_the_ledger_names_the_weights_a_segment_started_from_even_after_others_shipped(shipped, tmp_path):
    """Two segments start from the same shipped weights; the first ships. The second's checkpoint (resumed
    once) still records the SHA-256 of the file it started from, and its ledger row names that file, not the
    weights shipped meanwhile."""
    card_path = shipped / "lgnet_tiny.json"
    started_from = json.loads(card_path.read_text())["weights"]["sha256"]
    first = _tiny_run(tmp_path / "first", 1, init_from="pretrained:lgnet_tiny")
    second = _tiny_run(tmp_path / "second", 1, init_from="pretrained:lgnet_tiny")
    assert read_header(first)["init_sha256"] == read_header(second)["init_sha256"] == started_from
    cfg = dataclasses.replace(get_preset("lgnet_tiny_builtin"), max_steps=2, batch_size=2, val_every=0, image_every=0)
    cfg = dataclasses.replace(cfg, ckpt_every=0, ema_decay=0.5, init_from="pretrained:lgnet_tiny")
    run_training(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_count=0)), tmp_path / "second", resume="auto")
    second = tmp_path / "second" / "checkpoints" / "step_00000002.safetensors"
    assert read_header(second)["init_sha256"] == started_from  # kept through resume
    eval_dir = _fake_eval(tmp_path / "eval", {"lgnet_tiny": (25.2, 0.30), "first": (25.3, 0.31), "second": (25.25, 0.32)})
    for checkpoint, label in ((first, "first"), (second, "second")):
        args = ["ship-continued", str(checkpoint), "--eval", str(eval_dir), "--name", "lgnet_tiny", "--out", str(shipped)]
        assert cli.main([*args, "--candidate", label]) == 0
    card = json.loads(card_path.read_text())
    assert card["weights"]["sha256"] != started_from  # the first segment shipped
    assert [row["start_sha256"] for row in card["ledger"][1:]] == [started_from, started_from]


def test_ship_rule_shows_why_when_the_rounded_numbers_tie():
    """A refusal by 1e-4 must be visible in the ledger's reason: the numbers get the decimals that differ."""
    from inpaintlab.ledger import ship_rule

    ship, why = ship_rule({"psnr": 25.2827, "detail": 0.20270}, {"psnr": 25.3061, "detail": 0.20262})
    assert not ship and why == (
        "refused: the held-out detail ratio would fall (PSNR 25.306 vs 25.283 dB, detail ratio 0.2026 vs 0.2027)"
    )
    assert ship_rule({"psnr": 25.0, "detail": 0.2}, {"psnr": 25.0, "detail": 0.2}) == (
        True,
        "shipped: neither the held-out PSNR nor the detail ratio falls (PSNR 25.000 vs 25.000 dB, detail ratio 0.200 vs 0.200)",
    )


def _fake_eval(folder, rows, weights="ema", shipped_sha=None):
    """An ``inpaintlab eval`` folder with one metrics.json per row: {label: (psnr, detail)}, each scored with
    the checkpoint's ``weights`` generator (``shipped_sha``: recorded for every row, as eval records it for
    shipped weights)."""
    for label, (psnr, detail) in rows.items():
        (folder / label).mkdir(parents=True)
        values = {"l1": 3.0, "psnr": psnr, "ssim": 0.8, "detail": detail, "detail_gt": 1.0, "count": 4}
        settings = {"weights": weights, **({"weights_sha256": shipped_sha} if shipped_sha else {})}
        report = {"settings": settings, "overall": values, "bins": {"(0.1,0.2]": values}}
        (folder / label / "metrics.json").write_text(json.dumps(report))
    return folder


def test_ship_continued_ships_the_generator_that_was_scored(shipped, tiny_checkpoint, tmp_path):
    """A candidate scored with ``inpaintlab eval --weights live`` (a segment whose EMA still holds much of its
    start) ships its live generator, not the EMA; the card and the ledger row say which."""
    from safetensors.torch import load_file

    eval_dir = _fake_eval(tmp_path / "eval", {"lgnet_tiny": (25.2, 0.30), "candidate": (25.3, 0.31)}, weights="live")
    args = ["ship-continued", str(tiny_checkpoint), "--eval", str(eval_dir), "--name", "lgnet_tiny", "--out", str(shipped)]
    assert cli.main(args) == 0
    card = json.loads((shipped / "lgnet_tiny.json").read_text())
    assert card["weights"]["ema"] is False and card["ledger"][-1]["weights"] == "live" and card["ledger"][-1]["shipped"]
    expected, differs = load_file(str(tiny_checkpoint)), 0
    for key, value in load_file(str(shipped / "lgnet_tiny.safetensors")).items():
        assert torch.equal(value, expected[f"generator.{key}"].half()), key
        differs += not torch.equal(value, expected[f"generator_ema.{key}"].half())
    assert differs  # the EMA (decay 0.5 over two steps) is another set of weights


@pytest.mark.parametrize(
    "candidate, ships",
    [((25.3, 0.30), True), ((25.2, 0.30), True), ((25.1, 0.50), False), ((26.0, 0.29), False)],
    ids=["better", "equal", "psnr_falls", "detail_falls"],
)
def test_ship_continued_ships_only_weights_that_do_not_fall_and_keeps_a_ledger(
    shipped, tiny_checkpoint, tmp_path, candidate, ships
):
    """The ledger's ship rule: the shipped weights (25.2 dB, detail 0.30 on the same pairs) are replaced only
    when neither the held-out PSNR nor the detail ratio falls; the card's ledger records the segment either way."""
    from safetensors.torch import load_file

    weights = shipped / "lgnet_tiny.safetensors"
    before = weights.read_bytes()
    card_before = json.loads((shipped / "lgnet_tiny.json").read_text())
    eval_dir = _fake_eval(tmp_path / "eval", {"lgnet_tiny": (25.2, 0.30), "candidate": candidate, "telea": (24.0, 0.2)})
    args = ["ship-continued", str(tiny_checkpoint), "--eval", str(eval_dir), "--name", "lgnet_tiny", "--out", str(shipped)]
    assert cli.main([*args, "--hours", "0.5"]) == 0
    card = json.loads((shipped / "lgnet_tiny.json").read_text())
    first, row = card["ledger"]
    assert first["heldout"]["psnr"] == 25.2 and first["shipped"] and row["shipped"] is ships
    assert row["heldout"]["psnr"] == candidate[0] and row["steps"] == 2 and row["cpu_hours"] == 0.5
    trained = read_header(tiny_checkpoint)["config"]["model"]  # the recipe names its discriminator and width
    assert row["recipe"]["discriminator"] == {"name": trained["discriminator"], **trained["discriminator_kwargs"]}
    config = read_header(tiny_checkpoint)["config"]  # the data options and seed too (smooth_share, crops, ...)
    assert row["recipe"]["data"] == config["data"] and row["recipe"]["seed"] == config["seed"]
    assert row["start_sha256"] and row["start_sha256"] == card_before["weights"]["sha256"]  # where it started, by content
    assert row["versus_shipped"] is None  # rows without per-image values: no paired intervals
    if ships:
        assert card["heldout"]["model"]["overall"]["psnr"] == candidate[0] and card["step"] == card_before["step"] + 2
        expected = load_file(str(tiny_checkpoint))
        for key, value in load_file(str(weights)).items():
            assert torch.equal(value, expected[f"generator_ema.{key}"].half()), key
    else:
        assert weights.read_bytes() == before and row["why"].startswith("refused")
        assert card["heldout"] == card_before["heldout"] if "heldout" in card_before else "heldout" not in card


def test_ship_continued_refuses_weights_that_break_the_cards_promises(shipped, tiny_checkpoint, tmp_path):
    """Held-out numbers that pass the rule are not enough: a card that promises "no worse than Telea + 10 on
    smooth backgrounds, network alone" refuses two toy steps (a blotchy fill), says which picture broke it,
    and the shipped file and card stay as they were; the same candidate ships when the card promises nothing."""
    card_path, weights = shipped / "lgnet_tiny.json", shipped / "lgnet_tiny.safetensors"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "promises": ["smooth_backgrounds_network_alone"]}))
    before = weights.read_bytes()
    eval_dir = _fake_eval(tmp_path / "eval", {"lgnet_tiny": (25.2, 0.30), "candidate": (25.3, 0.31)})
    args = ["ship-continued", str(tiny_checkpoint), "--eval", str(eval_dir), "--name", "lgnet_tiny", "--out", str(shipped)]
    assert cli.main(args) == 0
    row = json.loads(card_path.read_text())["ledger"][-1]
    assert not row["shipped"] and row["why"].startswith("refused: it breaks the card's promises (the network alone on ")
    assert "neither the held-out PSNR nor the detail ratio falls" in row["why"]
    assert weights.read_bytes() == before and json.loads(card_path.read_text())["step"] == card["step"]
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "promises": []}))
    assert cli.main(args) == 0
    shipped_card = json.loads(card_path.read_text())
    assert shipped_card["ledger"][-1]["shipped"] and shipped_card["step"] == card["step"] + 2  # the file was replaced


def test_the_next_segment_is_seeded_by_the_ledger_and_named_by_the_shipped_file(tmp_path, capsys):
    """``inpaintlab continue --plan``: the next segment starts from the shipped weights with seed = the ledger's
    segment count, in a folder named by both: a refused segment grows the ledger, so the next one draws other
    batches instead of re-running the refused one bit for bit, and a ship changes the folder."""
    card = pretrained.model_card(pretrained.DEFAULT_MODEL)
    seed, start = len(card["ledger"]), card["weights"]["sha256"][:8]
    assert cli.main(["continue", "--plan", "--runs", str(tmp_path), "--preset", "lgnet_compact_texture"]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path}/lgnet_compact_texture-{start}-seed{seed}"
    variant = ["continue", "--plan", "--runs", str(tmp_path), "--set", "data.size=256"]
    assert cli.main(variant) == 0  # an experiment's segment never resumes the recipe's run folder
    assert capsys.readouterr().out.strip().startswith(f"{tmp_path}/lgnet_compact_texture_x3-{start}-seed{seed}-set")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_continue_runs_one_segment_in_the_background_on_one_thread(tmp_path):
    """``make continue`` (dry run): the plan names the log's folder, then ``inpaintlab continue`` runs detached
    with one thread, the recipe's options going to both."""
    root = Path(__file__).resolve().parents[1]
    make = ["make", "-n", "continue", f"RUNS={tmp_path}", "SET=--set optim.lr=5e-5"]
    dry = " ".join(subprocess.run(make, cwd=root, capture_output=True, text=True, check=True).stdout.split())
    assert f"inpaintlab continue --runs {tmp_path} --set optim.lr=5e-5 --plan" in dry
    assert f"OMP_NUM_THREADS=1 setsid nohup .venv/bin/inpaintlab continue --runs {tmp_path} --data " in dry
    assert "--set optim.lr=5e-5 >> $run/train.log" in dry


def _toy_split(folder):
    """A split of two built-in photos (both lists) and three mask files of 5, 15 and 25 % holes."""
    from inpaintlab.data import builtin_photo_paths

    folder.mkdir()
    photos = [str(path) for path, split in builtin_photo_paths().values() if split == "test"][:2]
    masks = []
    for ratio in (0.05, 0.15, 0.25):
        mask = np.zeros((256, 256), np.uint8)
        mask[32 : 32 + round(256 * ratio), 16:240] = 255  # 224 px wide: ratio * 256 * 224 / 256**2 ~ ratio
        masks.append(str(folder / f"mask_{ratio}.png"))
        Image.fromarray(mask).save(masks[-1])
    for kind, paths in (("images", photos), ("masks", masks)):
        for part in ("train", "heldout"):
            (folder / f"{part}_{kind}.txt").write_text("\n".join(paths) + "\n")
    return folder


def test_one_segment_trains_evaluates_and_is_judged_by_the_ledgers_rule(shipped, tmp_path, monkeypatch):
    """``continuation.run_segment`` end to end on the toy model, under a card whose promise two toy steps break
    (smooth backgrounds, network alone): it trains from the shipped weights with the ledger's seed, scores the
    shipped weights, Telea and the segment's EMA and live generators on the same held-out pairs, judges the
    EMA, and after its refusal the live generator (a ledger row each; the shipped file stays) and writes
    segment.json. Scoring again keeps every row of the same weights, another segment of the same pairs copies
    the shipped and Telea rows, and the shipped row is scored anew once another file ships."""
    from inpaintlab import continuation, evaluate

    card_path, weights = shipped / "lgnet_tiny.json", shipped / "lgnet_tiny.safetensors"
    before = {**json.loads(card_path.read_text()), "promises": ["smooth_backgrounds_network_alone"]}
    card_path.write_text(json.dumps(before))
    shipped_bytes = weights.read_bytes()
    toy = ["init_from=pretrained:lgnet_tiny", "max_steps=2", "batch_size=2", "val_every=0", "image_every=0", "ckpt_every=0"]
    split = _toy_split(tmp_path / "split")
    result = continuation.run_segment("lgnet_tiny", "lgnet_tiny_builtin", split=split, runs=tmp_path / "runs", overrides=toy)
    run = Path(result["run"])
    assert run.name.startswith(f"lgnet_tiny_builtin-{before['weights']['sha256'][:8]}-seed0-set")  # no ledger yet: seed 0
    assert read_header(result["checkpoint"])["config"]["seed"] == 0
    assert json.loads((run / "segment.json").read_text())["verdicts"] == result["verdicts"]
    assert set(result["heldout"]) == {"lgnet_tiny", "telea", "ema", "live"}
    settings = {label: json.loads((run / "eval" / label / "metrics.json").read_text())["settings"] for label in result["heldout"]}
    assert settings["lgnet_tiny"]["weights_sha256"] == before["weights"]["sha256"]
    assert settings["ema"]["weights"] == "ema" and settings["live"]["weights"] == "live"
    assert len({s["masks_source"] for s in settings.values()}) == 1  # the same held-out pairs for every row
    assert [(v["candidate"], v["shipped"]) for v in result["verdicts"]] == [("ema", False), ("live", False)]
    rows = json.loads(card_path.read_text())["ledger"][1:]  # the first row: the weights shipped before the ledger
    assert [(r["weights"], r["shipped"], r["why"]) for r in rows] == [
        ("ema", False, result["verdicts"][0]["why"]),
        ("live", False, result["verdicts"][1]["why"]),
    ]
    assert "breaks the card's promises" in rows[0]["why"] and weights.read_bytes() == shipped_bytes
    for row, label in zip(rows, ("ema", "live")):  # each row says how sure its differences are
        difference = row["versus_shipped"]["psnr"]
        assert difference["mean"] == pytest.approx(result["heldout"][label]["psnr"] - result["heldout"]["lgnet_tiny"]["psnr"])
        assert difference["ci95"][0] <= difference["mean"] <= difference["ci95"][1] and "paired 95 % intervals" in row["why"]
    assert continuation.plan_segment("lgnet_tiny", "lgnet_tiny_builtin", tmp_path / "runs", toy)[1] == 3  # the next draws anew

    scored = []
    monkeypatch.setattr(evaluate, "evaluate", lambda model, *a, out_dir, **k: scored.append(out_dir.name) or {"overall": {}})
    heldout = split / "heldout_images.txt", split / "heldout_masks.txt"
    continuation.evaluate_segment("lgnet_tiny", Path(result["checkpoint"]), run / "eval", *heldout)
    assert scored == []
    sibling = run.parent / "another-segment" / "eval"  # a later segment in the same runs folder, same pairs
    continuation.evaluate_segment("lgnet_tiny", Path(result["checkpoint"]), sibling, *heldout)
    assert scored == ["ema", "live"]  # the shipped and Telea rows are copied, not scored again
    telea = [json.loads((folder / "telea" / "metrics.json").read_text()) for folder in (run / "eval", sibling)]
    assert telea[0] == telea[1] and (sibling / "lgnet_tiny" / "samples.png").is_file()
    scored.clear()
    card = tmp_path / "card.json"  # another file ships
    card.write_text(json.dumps({"summary": "another", "inference_size": 64, "default_strategy": "resize"}))
    assert cli.main(["ship", result["checkpoint"], "--card", str(card), "--out", str(shipped)]) == 0
    continuation.evaluate_segment("lgnet_tiny", Path(result["checkpoint"]), run / "eval", *heldout)
    assert scored == ["lgnet_tiny"]


def test_a_segment_judged_after_another_shipped_is_judged_against_the_new_file(shipped, tmp_path, monkeypatch):
    """Two segments run side by side (``make continue`` beside an experiment): when the other one ships after
    this one scored the shipped file, this one scores the new file before it is judged, instead of stopping
    at the stale row with its trained checkpoint unjudged."""
    from inpaintlab import continuation

    card_path = shipped / "lgnet_tiny.json"
    toy = ["init_from=pretrained:lgnet_tiny", "max_steps=2", "batch_size=2", "val_every=0", "image_every=0", "ckpt_every=0"]
    real_score, seen = continuation.evaluate_segment, []

    def score_then_the_other_ships(name, checkpoint, *args, **kwargs):
        rows = real_score(name, checkpoint, *args, **kwargs)
        seen.append(json.loads(card_path.read_text())["weights"]["sha256"])
        if len(seen) == 1:  # the other segment ships right after this one's first scoring
            card = tmp_path / "card.json"
            card.write_text(json.dumps({"summary": "the other", "inference_size": 64, "default_strategy": "resize"}))
            assert cli.main(["ship", str(checkpoint), "--card", str(card), "--out", str(shipped)]) == 0
        return rows

    monkeypatch.setattr(continuation, "evaluate_segment", score_then_the_other_ships)
    split = _toy_split(tmp_path / "split")
    result = continuation.run_segment("lgnet_tiny", "lgnet_tiny_builtin", split=split, runs=tmp_path / "runs", overrides=toy)
    assert seen[0] != seen[1]  # the other shipped between the two scorings
    row = json.loads((Path(result["run"]) / "eval" / "lgnet_tiny" / "metrics.json").read_text())
    assert row["settings"]["weights_sha256"] == seen[1]  # the shipped row is of the file that ships now
    assert result["verdicts"][0]["candidate"] == "ema" and result["verdicts"][0]["why"]


def test_eval_records_the_shipped_file_and_ship_continued_refuses_a_stale_row(shipped, tiny_checkpoint, tmp_path):
    """``inpaintlab eval --model NAME`` records the SHA-256 of the shipped file it scored. After another segment
    ships, a row of the old file must not judge the next candidate: ``ship-continued`` stops with an error
    naming both files and records nothing; a row of the current file is judged as before."""
    card_path = shipped / "lgnet_tiny.json"
    sha = json.loads(card_path.read_text())["weights"]["sha256"]
    out = tmp_path / "scored"
    args = ["eval", "--model", "lgnet_tiny", "--model", "telea", "--images", "synthetic:1", "--size", "64"]
    assert cli.main([*args, "--metrics", "psnr,detail", "--masks", "center", "--out", str(out)]) == 0
    settings = json.loads((out / "lgnet_tiny" / "metrics.json").read_text())["settings"]
    assert settings["weights_sha256"] == sha
    assert "weights_sha256" not in json.loads((out / "telea" / "metrics.json").read_text())["settings"]
    rows = {"lgnet_tiny": (25.2, 0.30), "candidate": (25.3, 0.31)}
    stale = _fake_eval(tmp_path / "stale", rows, shipped_sha="0" * 64)
    ship = ["ship-continued", str(tiny_checkpoint), "--name", "lgnet_tiny", "--out", str(shipped)]
    ledger = json.loads(card_path.read_text()).get("ledger")
    assert cli.main([*ship, "--eval", str(stale)]) != 0
    assert json.loads(card_path.read_text()).get("ledger") == ledger
    assert cli.main([*ship, "--eval", str(_fake_eval(tmp_path / "fresh", rows, shipped_sha=sha))]) == 0
    assert json.loads(card_path.read_text())["ledger"][-1]["shipped"]
