"""Full-resolution detail (the ``detail`` strategy), the detail ratio, large and EXIF-rotated photos."""

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from inpaintlab import cli
from inpaintlab.data import builtin_photo_paths, load_image
from inpaintlab.detail import add_detail
from inpaintlab.errors import InpaintlabError
from inpaintlab.masks import object_mask
from inpaintlab.metrics import MetricTracker, detail_ratio, grid_share, lattice_share
from inpaintlab.models import create_model
from inpaintlab.pipeline import InpaintPipeline


def tensor(picture: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1)[None].float() / 255


def ratio(picture: np.ndarray, hole: np.ndarray) -> float:
    return float(detail_ratio(tensor(picture), torch.from_numpy(hole)[None, None].float())[0])


def telea_fill(image, mask, out):
    """``inpaintlab fill IMAGE --mask MASK --model telea -o OUT``."""
    assert cli.main(["fill", str(image), "--mask", str(mask), "--model", "telea", "-o", str(out)]) == 0


@pytest.fixture(scope="module")
def photo_and_hole():
    """A built-in test photo at its own size (> 256 px) with a 10 % object-shaped hole."""
    photo = load_image(builtin_photo_paths()["coffee"][0])
    hole = object_mask(*photo.shape[:2], 0.1, np.random.default_rng(3)) > 0
    return photo, hole


def test_detail_ratio_is_one_for_the_original_and_near_zero_for_a_blurred_fill():
    rng = np.random.default_rng(0)
    texture = (128 + 40 * rng.standard_normal((128, 128, 3))).clip(0, 255).astype(np.uint8)
    hole = np.zeros((128, 128), bool)
    hole[40:90, 30:100] = True
    assert ratio(texture, hole) == pytest.approx(1.0, abs=0.1)
    flat = texture.copy()
    flat[hole] = texture[hole].mean(axis=0).astype(np.uint8)
    assert ratio(flat, hole) < 0.01  # the seam with the known pixels is not counted as detail
    doubled = texture.astype(np.float64)
    doubled[hole] = 128 + 2 * (doubled[hole] - 128)
    assert ratio(doubled.clip(0, 255).astype(np.uint8), hole) == pytest.approx(2.0, rel=0.15)


def test_eval_tracker_reports_the_detail_ratio_of_the_fill_and_of_the_original():
    rng = np.random.default_rng(1)
    image = torch.from_numpy(rng.random((2, 3, 64, 64))).float()
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 16:48, 16:48] = 1
    comp = image * (1 - mask) + 0.5 * mask
    tracker = MetricTracker(metrics=("psnr", "detail", "detail_gt"), bins=((0.0, 1.0),))
    tracker.update(comp, image, mask)
    overall = tracker.result()["overall"]
    assert overall["detail"] == pytest.approx(0.0, abs=1e-9)
    assert overall["detail_gt"] == pytest.approx(1.0, abs=0.1)


def _photo_with_hole():
    """A built-in test photo at 128 px (B=1, [0,1]) and a 64 x 80 box hole."""
    from skimage import data

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1)[None].float() / 255
    hole = torch.zeros(1, 1, 128, 128)
    hole[..., 32:96, 24:104] = 1
    return photo, hole


@pytest.mark.parametrize("axes", ["x", "y", "xy"])
def test_grid_share_finds_a_two_pixel_pattern_in_any_direction(axes):
    """A 2-pixel pattern along x, y or both (what stride-2 transposed convolutions draw) is all grid; the
    photo itself has little; a faint grid (+-2.5 % of the range) added in the hole doubles it at least; NaN without a tile."""
    photo, hole = _photo_with_hole()
    y, x = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    phase = {"x": x, "y": y, "xy": x + y}[axes] % 2
    pattern = (phase.float() - 0.5)[None, None].expand(1, 3, 128, 128)
    assert float(grid_share(0.5 + 0.1 * pattern, hole)) == pytest.approx(1.0, abs=1e-6)
    natural = float(grid_share(photo, hole))
    assert natural < 0.3
    gridded = (photo + 0.05 * pattern * hole).clamp(0, 1)
    assert float(grid_share(gridded, hole)) > 2 * natural
    narrow = torch.zeros_like(hole)
    narrow[..., 32:96, 40:50] = 1  # no 16 x 16 tile fits
    assert math.isnan(float(grid_share(photo, narrow)))


def test_grid_share_tells_transposed_from_resize_convolution_upsampling():
    """The photo's hole refilled by a random stride-2 transposed convolution of its half-size version shows the
    grid; the same through a nearest x2 + 3x3 resize-conv shows less of it."""
    from inpaintlab.layers.upsample import ResizeConv2d

    torch.manual_seed(0)
    photo, hole = _photo_with_hole()
    small = torch.nn.functional.avg_pool2d(photo, 2)
    shares = {}
    for name, layer in (("transposed", torch.nn.ConvTranspose2d(3, 3, 4, 2, 1)), ("resize", ResizeConv2d(3, 3))):
        with torch.no_grad():
            fill = layer(small)
            fill = (fill - fill.mean()) / fill.std() * 0.1 + 0.5
        shares[name] = float(grid_share(photo * (1 - hole) + fill * hole, hole))
    assert shares["transposed"] > 0.5 > shares["resize"], shares


def test_eval_tracker_reports_grid_share_and_skips_images_without_a_tile():
    photo, hole = _photo_with_hole()
    small = torch.zeros_like(hole)
    small[..., 60:70, 60:70] = 1
    tracker = MetricTracker(metrics=("grid", "grid_gt"), bins=((0.0, 0.1), (0.1, 1.0)))
    tracker.update(photo.expand(2, 3, 128, 128), photo.expand(2, 3, 128, 128), torch.cat([hole, small]))
    result = tracker.result()
    assert result["overall"]["grid"] == pytest.approx(float(grid_share(photo, hole)))
    assert math.isnan(result["bins"][tracker.bin_label(0)]["grid_gt"])  # the small hole has no whole tile


def _photo_256_with_hole():
    """The astronaut at 256 px (B=1, [0,1]) and a 192 x 192 box hole: 25 whole 32 x 32 tiles in its interior."""
    from skimage import data

    photo = torch.from_numpy(data.astronaut()[::2, ::2].copy()).permute(2, 0, 1)[None].float() / 255
    hole = torch.zeros(1, 1, 256, 256)
    hole[..., 32:224, 32:224] = 1
    return photo, hole


@pytest.mark.parametrize("period", [2, 4, 8])
def test_lattice_share_finds_the_dots_of_every_stride_that_the_grid_share_misses(period):
    """Dots every 2, 4 or 8 pixels (what a decoder's stride-2 layers draw under texture terms) are all lattice;
    the photo and noise are not. A smooth fill with faint 8-pixel dots, what a texture term pulled out of
    LGNet: the detail ratio counts them as texture and the grid share does not see them; this does."""
    photo, hole = _photo_256_with_hole()
    y, x = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    dots = ((x % period == 0) & (y % period == 0)).float()[None, None].expand(1, 3, 256, 256)
    assert float(lattice_share(0.5 + 0.2 * dots, hole)) == pytest.approx(1.0, abs=1e-6)
    natural = float(lattice_share(photo, hole))
    assert natural < 0.1
    noise = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    assert float(lattice_share(noise, hole)) < 0.1
    if period == 8:
        smooth = F.interpolate(F.avg_pool2d(photo, 16), scale_factor=16, mode="bilinear")
        blobs = ((x % 8 < 2) & (y % 8 < 2)).float()[None, None].expand(1, 3, 256, 256)  # 2 x 2 dots every 8 px
        blurred, dotted = (photo * (1 - hole) + fill * hole for fill in (smooth, smooth + 0.05 * blobs))
        assert float(detail_ratio(dotted, hole)) > 3 * float(detail_ratio(blurred, hole))
        assert float(grid_share(dotted, hole)) < 0.05
        assert float(lattice_share(dotted, hole)) > 0.9
    stripes = (0.5 + 0.2 * (x % 16 < 8).float())[None, None].expand(1, 3, 256, 256)
    assert float(lattice_share(stripes, hole)) < 0.1  # a 16-pixel period is not one of the decoders' strides


def test_lattice_share_needs_a_whole_tile_and_a_tile_that_holds_the_period():
    photo, _ = _photo_256_with_hole()
    narrow = torch.zeros(1, 1, 256, 256)
    narrow[..., 32:224, 100:130] = 1  # no 32 x 32 tile fits in its interior
    assert math.isnan(float(lattice_share(photo, narrow)))
    with pytest.raises(InpaintlabError, match="multiple of period"):
        lattice_share(photo, narrow, period=8, tile=20)


def test_add_detail_copies_known_texture_into_the_hole_only_and_is_seeded():
    rng = np.random.default_rng(0)
    photo = (0.5 + 0.15 * rng.standard_normal((200, 300, 3))).clip(0, 1).astype(np.float32)
    hole = np.zeros((200, 300), bool)
    hole[60:140, 100:220] = True
    coarse = np.full((50, 75, 3), 0.5, np.float32)
    out = add_detail(photo, hole, coarse, seed=0)
    assert out.shape == photo.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[~hole], photo[~hole])
    np.testing.assert_array_equal(out, add_detail(photo, hole, coarse, seed=0))
    assert not np.array_equal(out, add_detail(photo, hole, coarse, seed=1))
    plain = add_detail(photo, hole, coarse, strength=0.0)
    np.testing.assert_allclose(plain[hole], 0.5, atol=1e-6)  # strength 0: the upsampled fill alone
    as_uint8 = lambda a: (a * 255).round().astype(np.uint8)  # noqa: E731
    assert ratio(as_uint8(out), hole) > 0.6 > 0.05 > ratio(as_uint8(plain), hole)


def test_detail_strategy_on_a_real_photo_adds_texture_and_leaves_the_outside_untouched(photo_and_hole):
    photo, hole = photo_and_hole
    pipe = InpaintPipeline.from_pretrained(smooth_threshold=0)
    detailed = pipe(photo, hole, strategy="detail")
    assert detailed.shape == photo.shape
    np.testing.assert_array_equal(detailed[~hole], photo[~hole])
    assert (detailed[hole] != photo[hole]).any()
    np.testing.assert_array_equal(detailed, pipe(photo, hole, strategy="detail"))  # deterministic (seed 0)
    pipe.detail_strength = 0.0  # the same box and network fill, upsampled without the photo's own detail
    plain = pipe(photo, hole, strategy="detail")
    assert ratio(detailed, hole) > 0.4 > 2 * ratio(plain, hole), (ratio(detailed, hole), ratio(plain, hole))


def test_fill_accepts_a_30_megapixel_photo(tmp_path):
    height, width = 4500, 6700  # 30.15 MP; above the old 16.7 MP limit
    yy, xx = np.mgrid[0:height, 0:width]
    photo = np.dstack([(xx * 255 // width), (yy * 255 // height), np.full_like(xx, 128)]).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "big.png", compress_level=1)
    hole = np.zeros((height, width), np.uint8)
    hole[2000:2100, 3000:3200] = 255
    Image.fromarray(hole).save(tmp_path / "hole.png")
    telea_fill(tmp_path / "big.png", tmp_path / "hole.png", tmp_path / "out.png")
    result = np.asarray(Image.open(tmp_path / "out.png"))
    assert result.shape == photo.shape
    with pytest.raises(SystemExit):  # and the limit is the user's to set
        cli.main(["fill", str(tmp_path / "big.png"), "--mask", str(tmp_path / "hole.png"), "--max-pixels", "0", "-o", "x.png"])


def test_fill_returns_an_exif_rotated_photo_as_shown_with_the_hole_where_it_was_drawn(tmp_path):
    stored = np.zeros((40, 60, 3), np.uint8)  # 60 wide as stored; shown 40 wide, 60 high (orientation 6)
    stored[:, :30] = (200, 30, 30)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="PNG", exif=exif)
    (tmp_path / "phone.png").write_bytes(buffer.getvalue())
    shown = np.rot90(stored, k=-1)  # what a viewer shows: 60 high, 40 wide
    hole = np.zeros(shown.shape[:2], np.uint8)
    hole[5:15, 5:15] = 255  # drawn on the shown picture
    Image.fromarray(hole).save(tmp_path / "hole.png")
    telea_fill(tmp_path / "phone.png", tmp_path / "hole.png", tmp_path / "out.png")
    result = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    assert result.shape == shown.shape
    known = hole == 0
    np.testing.assert_array_equal(result[known], shown[known])


def test_detail_is_the_default_and_equals_resize_at_the_model_size(photo_and_hole):
    """The card's default (chosen on the full-resolution protocol) leaves 256 px work as it was: the
    held-out 256 px table does not move."""
    import cv2

    pipe = InpaintPipeline.from_pretrained()
    assert pipe.strategy == "detail" and pipe.detail_strength == 1.0
    photo, _ = photo_and_hole
    small = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    hole = object_mask(256, 256, 0.2, np.random.default_rng(0)) > 0
    np.testing.assert_array_equal(pipe(small, hole), pipe(small, hole, strategy="resize"))


def test_the_fast_ssim_of_the_full_resolution_protocol_equals_the_metric():
    """strategies' ssim_fast (OpenCV's separable filter) is an optimisation of metrics.ssim: same numbers."""
    from inpaintlab.metrics import ssim
    from inpaintlab.strategy_check import ssim_fast

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert ssim_fast(a, b) == pytest.approx(float(ssim(tensor(a).double(), tensor(b).double())[0]), abs=1e-9)


def test_detail_fills_each_region_of_holes_in_its_own_box_and_copies_no_hole_pixels(monkeypatch):
    """Holes far apart get a box each (not one box spanning the photo, where the network would see them at
    a fraction of their size); a hole inside another region's box is never a source of its texture."""
    rng = np.random.default_rng(0)
    photo = (110 + 40 * rng.random((2000, 3000, 3))).astype(np.uint8)
    hole = np.zeros((2000, 3000), bool)
    hole[1500:1800, 2500:2800] = True  # far from the others
    hole[400:1000, 400:1000] = True  # a large hole whose box (a quarter of its side around it) ...
    hole[500:800, 1080:1140] = True  # ... reaches this one, 80 px away: another region (merge distance 64)
    yy, xx = np.mgrid[500:800, 1080:1140]
    photo[500:800, 1080:1140] = np.where(((yy // 4 + xx // 4) % 2)[:, :, None] == 1, (255, 0, 255), (0, 255, 0))
    pipe = InpaintPipeline(create_model("telea"), train_size=256, smooth_threshold=0)
    jobs = pipe._jobs(0, photo, hole, "detail")
    assert len(jobs) == 3 and all(job.detail for job in jobs), [(job.box, job.detail) for job in jobs]
    assert all(max(job.box[2:]) <= 900 for job in jobs)
    import inpaintlab.detail

    seen = []  # the hole each detail transfer is given: no pixel in it is a source of texture
    real = inpaintlab.detail.add_detail
    monkeypatch.setattr(inpaintlab.detail, "add_detail", lambda p, h, *a, **k: seen.append(h.copy()) or real(p, h, *a, **k))
    out = pipe(photo, hole, strategy="detail")
    np.testing.assert_array_equal(out[~hole], photo[~hole])
    (large,) = [job for job in jobs if job.paste.sum() == 600 * 600]  # only the large hole is pasted from it
    top, left, height, width = large.box
    (given,) = [h for h in seen if h.shape == (height, width)]
    np.testing.assert_array_equal(given, hole[top : top + height, left : left + width])  # the checker's too
    assert given.sum() > large.paste.sum()
