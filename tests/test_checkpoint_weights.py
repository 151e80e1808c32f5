"""Every user path answers with the checkpoint's own weights (issue 25, item 2).

Compositing makes known pixels right for any model, so each path is checked on the hole pixels: they must
equal those of a model built independently here (registry + ``load_state_dict`` from the raw safetensors
tensors, the EMA generator as ``load_model`` documents), and differ from a fresh initialisation. A path
that built the model from the header alone, or read the live generator instead of the EMA, fails.
"""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from inpaintlab import InpaintPipeline, cli, create_model
from inpaintlab.checkpoint import save_checkpoint
from inpaintlab.data import build_dataset
from inpaintlab.evaluate import evaluate
from inpaintlab.serve import create_app

SIZE = 64


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An ``lgnet_tiny`` checkpoint whose live and EMA generators hold different, non-initial weights."""
    torch.manual_seed(0)
    live, ema = create_model("lgnet_tiny"), create_model("lgnet_tiny")
    generator = torch.Generator().manual_seed(1)
    tensors = {}
    for prefix, model, scale in (("generator", live, 2.0), ("generator_ema", ema, 3.0)):
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                value = value + scale * torch.randn(value.shape, generator=generator) * (value.std() if value.numel() > 1 else 1)
            tensors[f"{prefix}.{name}"] = value
    header = {"model": {"name": "lgnet_tiny", "kwargs": {}}, "step": 7, "config": {"data": {"size": SIZE}}}
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "step_7.safetensors", tensors, header)


def reference_model(path, prefix="generator_ema"):
    model = create_model("lgnet_tiny")
    tensors = load_file(str(path))
    model.load_state_dict({k.removeprefix(prefix + "."): v for k, v in tensors.items() if k.startswith(prefix + ".")})
    return model.eval()


def reference_fill(model, picture, hole):
    image = torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255
    mask = torch.from_numpy(hole)[None, None].float()
    with torch.no_grad():
        pred = model(image, mask).pred.clamp(0, 1)
    return (pred[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def picture_and_hole():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    hole = np.zeros((SIZE, SIZE), bool)
    hole[16:44, 12:40] = True
    return picture, hole


@pytest.fixture(scope="module")
def expected(checkpoint, picture_and_hole):
    """The checkpoint's EMA fill of the hole; checked to differ from the live weights' and a fresh model's."""
    picture, hole = picture_and_hole
    fill = reference_fill(reference_model(checkpoint), picture, hole)[hole]
    for other in (reference_model(checkpoint, "generator"), create_model("lgnet_tiny").eval()):
        assert np.abs(reference_fill(other, picture, hole)[hole].astype(int) - fill).mean() > 2
    return fill


def test_pipeline_from_checkpoint_fills_with_the_checkpoint_weights(checkpoint, picture_and_hole, expected):
    picture, hole = picture_and_hole
    result = InpaintPipeline.from_checkpoint(checkpoint, strategy="pad")(picture, hole)
    np.testing.assert_array_equal(result[hole], expected)


def test_fill_cli_fills_with_the_checkpoint_weights(checkpoint, picture_and_hole, expected, tmp_path):
    picture, hole = picture_and_hole
    Image.fromarray(picture).save(tmp_path / "photo.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "hole.png")
    args = ["fill", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "hole.png"), "--checkpoint", str(checkpoint)]
    assert cli.main([*args, "--strategy", "pad", "-o", str(tmp_path / "out.png")]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png"))[hole], expected)


def test_server_fills_with_the_checkpoint_weights(checkpoint, picture_and_hole, expected):
    from fastapi.testclient import TestClient

    picture, hole = picture_and_hole
    app = create_app(checkpoints=[str(checkpoint)])
    files = {}
    for field, array in (("image", picture), ("mask", hole.astype(np.uint8) * 255)):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        files[field] = (f"{field}.png", buffer.getvalue(), "image/png")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        name = client.get("/api/models").json()["models"][0]["name"]
        response = client.post("/api/inpaint", files=files, data={"model": name, "strategy": "pad"})
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))[hole], expected)


def test_eval_checkpoint_scores_the_checkpoint_weights(checkpoint, tmp_path):
    args = ["eval", "--images", "synthetic:2", "--size", str(SIZE), "--metrics", "psnr", "--masks", "center"]
    assert cli.main([*args, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "cli")]) == 0
    reported = json.loads((tmp_path / "cli" / "metrics.json").read_text())["overall"]["psnr"]
    images = build_dataset("synthetic:2", size=SIZE, split="test")
    kwargs = dict(metrics=("psnr",), progress=False)
    own = evaluate(reference_model(checkpoint), images, "center", **kwargs)["overall"]["psnr"]
    fresh = evaluate(create_model("lgnet_tiny").eval(), images, "center", **kwargs)["overall"]["psnr"]
    assert reported == pytest.approx(own, abs=1e-6) and abs(own - fresh) > 0.1


def test_eval_weights_live_scores_the_live_generator_and_says_so(checkpoint, tmp_path):
    args = ["eval", "--images", "synthetic:2", "--size", str(SIZE), "--metrics", "psnr", "--masks", "center"]
    assert cli.main([*args, "--checkpoint", str(checkpoint), "--weights", "live", "--out", str(tmp_path / "live")]) == 0
    report = json.loads((tmp_path / "live" / "metrics.json").read_text())
    images = build_dataset("synthetic:2", size=SIZE, split="test")
    kwargs = dict(metrics=("psnr",), progress=False)
    live = evaluate(reference_model(checkpoint, "generator"), images, "center", **kwargs)["overall"]["psnr"]
    ema = evaluate(reference_model(checkpoint), images, "center", **kwargs)["overall"]["psnr"]
    assert report["overall"]["psnr"] == pytest.approx(live, abs=1e-6) and abs(live - ema) > 0.1
    assert '"weights": "live"' in json.dumps(report)


# ------------------------------------------------------------------- corrupted weights (issue 20, item 6)


def test_a_checkpoint_changed_after_saving_is_refused_by_every_path_in_one_line(checkpoint, picture_and_hole, tmp_path, capsys):
    from inpaintlab.checkpoint import load_model
    from inpaintlab.errors import InpaintlabError

    data = bytearray(checkpoint.read_bytes())
    data[-100] ^= 0xFF  # one byte of one weight
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(InpaintlabError, match="content hash mismatch"):
        load_model(bad)
    with pytest.raises(InpaintlabError, match="content hash mismatch"):
        InpaintPipeline.from_checkpoint(bad)
    picture, hole = picture_and_hole
    Image.fromarray(picture).save(tmp_path / "photo.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "hole.png")
    code = cli.main(
        [
            "fill",
            str(tmp_path / "photo.png"),
            "--mask",
            str(tmp_path / "hole.png"),
            "--checkpoint",
            str(bad),
            "-o",
            str(tmp_path / "o.png"),
        ]
    )
    assert code != 0 and not (tmp_path / "o.png").exists()
    err = capsys.readouterr().err
    assert "content hash mismatch" in err and "Traceback" not in err


def test_shipped_weights_are_checked_against_the_card_hash(tmp_path, monkeypatch):
    import shutil

    from inpaintlab import pretrained
    from inpaintlab.errors import InpaintlabError

    weights = tmp_path / "weights"
    shutil.copytree(pretrained.WEIGHTS_DIR, weights)
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", weights)
    card = json.loads((weights / "lgnet_compact.json").read_text())
    assert card["weights"]["sha256"] == pretrained.file_sha256(weights / "lgnet_compact.safetensors")
    data = bytearray((weights / "lgnet_compact.safetensors").read_bytes())
    data[-2] ^= 0x40
    (weights / "lgnet_compact.safetensors").write_bytes(bytes(data))
    with pytest.raises(InpaintlabError, match="SHA-256 differs from its card"):
        create_model("lgnet_compact", pretrained=True)


def test_a_model_answering_nan_is_refused_not_written_as_black(checkpoint, picture_and_hole):
    from inpaintlab.errors import InpaintlabError

    model = reference_model(checkpoint)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    picture, hole = picture_and_hole
    with pytest.raises(InpaintlabError, match="NaN or infinite"):
        InpaintPipeline(model, strategy="pad")(picture, hole)


def test_a_checkpoint_header_that_is_not_json_is_a_one_line_error(tmp_path):
    from safetensors.torch import save_file

    from inpaintlab.checkpoint import read_header
    from inpaintlab.errors import InpaintlabError

    path = tmp_path / "broken.safetensors"
    save_file({"generator.w": torch.zeros(2)}, str(path), metadata={"inpaintlab": "{not json"})
    with pytest.raises(InpaintlabError, match="not valid JSON"):
        read_header(path)


def test_a_checkpoint_named_in_any_script_is_served(checkpoint, picture_and_hole, tmp_path, expected):
    """Issue 20 item 18: a checkpoint named 模型.safetensors made every response a 500 (its name went into a
    Latin-1 header). The header now carries it percent-encoded."""
    import shutil
    from urllib.parse import unquote

    from fastapi.testclient import TestClient

    named = tmp_path / "模型.safetensors"
    shutil.copy(checkpoint, named)
    picture, hole = picture_and_hole
    files = {}
    for field, array in (("image", picture), ("mask", hole.astype(np.uint8) * 255)):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        files[field] = (f"{field}.png", buffer.getvalue(), "image/png")
    with TestClient(create_app(checkpoints=[str(named)]), base_url="http://127.0.0.1") as client:
        response = client.post("/api/inpaint", files=files, data={"model": "模型", "strategy": "pad"})
    assert response.status_code == 200, response.text
    assert unquote(response.headers["X-Inpaint-Model"]) == "模型"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))[hole], expected)
