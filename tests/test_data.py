"""Datasets, preprocessing modes, built-in photos, bad files and collation (``inpaintlab.data``)."""

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torch.utils.data import DataLoader

from inpaintlab import InpaintlabError, Sample, data
from inpaintlab.data import (
    ArrayDataset,
    ImageDataset,
    build_dataset,
    builtin_images,
    collate_samples,
    jitter_colors,
    load_image,
    synthetic_images,
)
from inpaintlab.masks import build_mask_source


def as_tensor(rgb):
    """(H,W,3) uint8 -> (3,H,W) float in [0,1], computed independently of the library."""
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255


def pil_resize(rgb, width, height, resample=Image.Resampling.BICUBIC):
    return np.asarray(Image.fromarray(rgb).resize((width, height), resample))


@pytest.fixture(scope="module")
def chelsea_file(tmp_path_factory):
    """A real 300x451 photo saved losslessly; returns (path, array)."""
    rgb = skimage.data.chelsea()
    path = tmp_path_factory.mktemp("photos") / "chelsea.png"
    Image.fromarray(rgb).save(path)
    return path, rgb


def save_png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


# ---------------------------------------------------------------------------------------- preprocessing


def test_resize_mode_is_pil_bicubic_of_whole_image(chelsea_file):
    path, rgb = chelsea_file
    sample = ImageDataset([path], size=64, preprocess="resize")[0]
    assert sample.image.shape == (3, 64, 64) and sample.image.dtype == torch.float32
    assert 0 <= sample.image.min() and sample.image.max() <= 1
    assert torch.equal(sample.image, as_tensor(pil_resize(rgb, 64, 64)))
    assert sample.name == str(path)


def test_face_crop_is_centre_square_then_resize(chelsea_file):
    path, rgb = chelsea_file
    centre = rgb[:, 75:375]  # 451 wide, 300 high: (451 - 300) // 2 = 75 columns off each side
    sample = ImageDataset([path], size=64, preprocess="face_crop")[0]
    assert torch.equal(sample.image, as_tensor(pil_resize(centre, 64, 64)))
    bilinear = ImageDataset([path], size=64, preprocess="face_crop", interpolation="bilinear")[0]
    assert torch.equal(bilinear.image, as_tensor(pil_resize(centre, 64, 64, Image.Resampling.BILINEAR)))
    assert not torch.equal(bilinear.image, sample.image)


def find_window(big, crop):
    """Top-left (y, x) where ``crop`` sits in ``big`` exactly, or None."""
    scores = cv2.matchTemplate(big.astype(np.float32), crop.astype(np.float32), cv2.TM_SQDIFF)
    _, _, (x, y), _ = cv2.minMaxLoc(scores)
    return (y, x) if np.array_equal(big[y : y + crop.shape[0], x : x + crop.shape[1]], crop) else None


def test_scene_crop_resizes_short_side_to_350_then_crops_randomly(chelsea_file):
    path, rgb = chelsea_file
    scaled = pil_resize(rgb, round(451 * 350 / 300), 350)  # MSA-Net: short side 350, aspect kept
    dataset = ImageDataset([path], size=256, preprocess="scene_crop")
    offsets = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        crop = (dataset[0].image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        assert crop.shape == (256, 256, 3)
        offset = find_window(scaled, crop)
        assert offset is not None, "scene crop is not a window of the 350-short-side resize"
        offsets.add(offset)
    assert len(offsets) > 1, "the crop position should change with the epoch"


def test_scene_crop_short_side_scales_with_size(chelsea_file):
    path, rgb = chelsea_file
    short = round(350 * 64 / 256)
    scaled = pil_resize(rgb, round(451 * short / 300), short)
    crop = ImageDataset([path], size=64, preprocess="scene_crop")[0].image.permute(1, 2, 0) * 255
    assert find_window(scaled, crop.round().to(torch.uint8).numpy()) is not None
    with pytest.raises(InpaintlabError, match="scene_short_side"):
        ImageDataset([path], size=64, preprocess="scene_crop", scene_short_side=32)


def test_none_mode_passes_exact_size_and_rejects_others(tmp_path, chelsea_file):
    rgb = skimage.data.astronaut()[100:164, 200:264]
    path = save_png(tmp_path / "a.png", rgb)
    assert torch.equal(ImageDataset([path], size=64, preprocess="none")[0].image, as_tensor(rgb))
    with pytest.raises(InpaintlabError, match="preprocess='none' needs 64x64"):
        ImageDataset([chelsea_file[0]], size=64, preprocess="none")[0]
    with pytest.raises(InpaintlabError, match="preprocess must be one of"):
        ImageDataset([path], size=64, preprocess="zoom")


# ---------------------------------------------------------------------------------------- randomness


def test_same_seed_epoch_index_gives_identical_sample_in_any_order():
    items = synthetic_images(6, 48, seed=1)
    make = lambda seed: ArrayDataset(
        items,
        size=32,
        preprocess="scene_crop",
        flip=True,  # noqa: E731
        mask_source=build_mask_source("strokes", 32),
        seed=seed,
        scene_short_side=40,
    )
    first, second = make(0), make(0)
    first.set_epoch(3)
    second.set_epoch(3)
    forward = [first[i] for i in range(6)]
    backward = [second[i] for i in reversed(range(6))][::-1]
    for a, b in zip(forward, backward):
        assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask) and a.name == b.name
    second.set_epoch(4)
    other_epoch = [second[i] for i in range(6)]
    assert sum(not torch.equal(a.mask, b.mask) for a, b in zip(forward, other_epoch)) >= 5
    assert sum(not torch.equal(a.image, b.image) for a, b in zip(forward, other_epoch)) >= 4
    other_seed = make(1)
    other_seed.set_epoch(3)
    assert sum(not torch.equal(a.mask, other_seed[i].mask) for i, a in enumerate(forward)) >= 5


def test_dataloader_workers_do_not_change_samples_and_collate_to_batches():
    dataset = ArrayDataset(
        synthetic_images(8, 32, seed=2), size=32, flip=True, mask_source=build_mask_source("strokes", 32), seed=5
    )
    dataset.set_epoch(2)
    single = list(DataLoader(dataset, batch_size=4, num_workers=0, collate_fn=collate_samples))
    multi = list(DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_samples))
    assert len(single) == 2
    for a, b in zip(single, multi):
        assert isinstance(a, Sample)
        assert a.image.shape == (4, 3, 32, 32) and a.mask.shape == (4, 1, 32, 32)
        assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask) and list(a.name) == list(b.name)
    assert torch.equal(single[0].mask[1], dataset[1].mask)


def test_flip_mirrors_about_half_the_items_and_leaves_masks_alone():
    items = synthetic_images(200, 8, seed=3)
    flipped = ArrayDataset(items, size=8, preprocess="none", flip=True, mask_source=build_mask_source("mixed", 8))
    plain = ArrayDataset(items, size=8, preprocess="none", flip=False, mask_source=build_mask_source("mixed", 8))
    count = 0
    for i, (_, rgb) in enumerate(items):
        out, ref = flipped[i], plain[i]
        assert torch.equal(ref.image, as_tensor(rgb))
        is_mirror = torch.equal(out.image, as_tensor(rgb[:, ::-1]))
        assert is_mirror or torch.equal(out.image, ref.image)
        count += is_mirror
        assert torch.equal(out.mask, ref.mask), "the mask stream must not depend on the flip option"
    assert 70 <= count <= 130  # Binomial(200, 0.5): mean 100, sd 7


def test_color_jitter_changes_only_the_colours_and_each_strength_does_its_own_thing():
    items = synthetic_images(20, 16, seed=5)
    common = dict(size=16, preprocess="none", flip=True, mask_source=build_mask_source("mixed", 16), seed=2)
    plain, jittered = ArrayDataset(items, **common), ArrayDataset(items, color_jitter=(0.05,) * 4, **common)
    again = ArrayDataset(items, color_jitter=(0.05,) * 4, **common)
    changed = 0
    for i in range(len(items)):
        a, b = plain[i], jittered[i]
        assert torch.equal(a.mask, b.mask)  # geometry and masks as without jitter
        assert torch.equal(b.image, again[i].image)  # seeded by (seed, epoch, index)
        assert (a.image - b.image).abs().max() < 0.25  # PEN-Net's strengths are small
        changed += not torch.equal(a.image, b.image)
    assert changed == len(items)
    rgb = np.random.default_rng(0).integers(30, 200, (8, 8, 3)).astype(np.uint8)
    for seed in range(5):  # brightness alone: one factor in [0.8, 1.2] for every pixel (none clipped here)
        out = jitter_colors(rgb, (0.2, 0, 0, 0), np.random.default_rng(seed)).astype(float)
        ratio = out / rgb
        assert 0.8 - 0.02 <= ratio.min() and ratio.max() <= 1.2 + 0.02 and ratio.max() - ratio.min() < 0.03
    grey = np.full((8, 8, 3), 90, np.uint8)  # hue and saturation leave grey alone; contrast keeps a flat image
    assert np.array_equal(jitter_colors(grey, (0, 0.3, 0.3, 0.5), np.random.default_rng(1)), grey)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 200
    shifted = jitter_colors(red, (0, 0, 0, 0.5), np.random.default_rng(3))  # hue alone: same brightness, new hue
    assert shifted.max() == 200 and not np.array_equal(shifted, red)
    with pytest.raises(InpaintlabError, match="color_jitter"):
        ArrayDataset(items, color_jitter=(0, 0, 0, 0.7), **common)


def test_smooth_share_replaces_that_share_of_items_by_smooth_pictures_and_changes_nothing_else():
    """``smooth_share``: about that share of items becomes a defocused crop or a two-colour gradient (far less
    Laplacian energy than the photo, within the crop's range of colours), drawn on its own stream: the masks and every
    other item are the same as without it, and the draw is seeded."""
    photo = cv2.resize(skimage.data.astronaut(), (64, 64), interpolation=cv2.INTER_AREA)
    items = [(f"a{i}", np.roll(photo, 5 * i, axis=1)) for i in range(60)]
    common = dict(size=64, preprocess="none", flip=True, mask_source=build_mask_source("mixed", 64), seed=4)
    plain, smooth = ArrayDataset(items, **common), ArrayDataset(items, smooth_share=0.3, **common)
    energy = lambda image: float(np.abs(cv2.Laplacian(image.permute(1, 2, 0).numpy(), cv2.CV_32F)).mean())  # noqa: E731
    changed = 0
    for i in range(len(items)):
        a, b = plain[i], smooth[i]
        assert torch.equal(a.mask, b.mask) and torch.equal(b.image, ArrayDataset(items, smooth_share=0.3, **common)[i].image)
        if not torch.equal(a.image, b.image):
            changed += 1
            assert energy(b.image) < 0.2 * energy(a.image)
            low, high = a.image.amin(dim=(1, 2)) - 1 / 255, a.image.amax(dim=(1, 2)) + 1 / 255  # the crop's colours
            assert bool(((b.image.amin(dim=(1, 2)) >= low) & (b.image.amax(dim=(1, 2)) <= high)).all())
    assert 8 <= changed <= 30  # Binomial(60, 0.3): mean 18, sd 3.5
    assert all(not torch.equal(a.image, b.image) for a, b in zip(plain, ArrayDataset(items, smooth_share=1.0, **common)))
    with pytest.raises(InpaintlabError, match="smooth_share"):
        ArrayDataset(items, smooth_share=1.5, **common)


def test_masks_default_to_zero_and_wrong_mask_shape_is_an_error():
    items = synthetic_images(2, 16, seed=0)
    sample = ArrayDataset(items, size=16)[1]
    assert sample.mask.shape == (1, 16, 16) and not sample.mask.any()
    with_holes = ArrayDataset(items, size=16, mask_source=build_mask_source("box", 16))[1]
    assert with_holes.mask.any() and set(with_holes.mask.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(InpaintlabError, match=r"expected a \(1,16,16\)"):
        ArrayDataset(items, size=16, mask_source=build_mask_source("box", 8))[0]


# ---------------------------------------------------------------------------------------- built-in photos


def test_builtin_split_is_disjoint_by_photo_and_crops_are_real_photos():
    train, test = builtin_images("train"), builtin_images("test")
    photo = lambda name: name.rsplit("_s", 1)[0]  # noqa: E731
    train_photos, test_photos = {photo(n) for n, _ in train}, {photo(n) for n, _ in test}
    assert len(train_photos) >= 5 and len(test_photos) >= 3 and not train_photos & test_photos
    for name, crop in train + test:
        assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
        assert crop.std() > 15, f"{name} looks flat"
    assert len({n for n, _ in train + test}) == len(train) + len(test)
    crops = dict(train)
    assert np.array_equal(crops["astronaut_s1_0_0"], pil_resize(skimage.data.astronaut(), 256, 256))
    twice = pil_resize(skimage.data.astronaut(), 512, 512)
    assert np.array_equal(crops["astronaut_s2_1_0"], twice[256:, :256])
    with pytest.raises(InpaintlabError, match="'train' or 'test'"):
        builtin_images("val")


def test_builtin_skips_missing_optional_packages(monkeypatch):
    real_find_spec = data.importlib.util.find_spec
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None if name == "sklearn" else real_find_spec(name))
    photos = data.builtin_photo_paths()
    assert "china" not in photos and "flower" not in photos and "astronaut" in photos


def test_build_dataset_roots():
    train = build_dataset("synthetic:5", size=16, mask_source=build_mask_source("box", 16))
    test = build_dataset("synthetic:5", split="test", size=16)
    assert len(train) == len(test) == 5
    assert not {s.name for s in train} & {s.name for s in test}
    assert train[0].image.shape == (3, 16, 16) and train[0].image.std() > 0.05
    assert len(build_dataset("synthetic", size=16)) == 32
    builtin = build_dataset("builtin", split="test", size=64)
    assert builtin[0].image.shape == (3, 64, 64)
    with pytest.raises(InpaintlabError, match="synthetic:N"):
        build_dataset("synthetic:many")


def test_synthetic_images_are_seeded_and_varied():
    a, b, c = synthetic_images(3, 32, seed=7), synthetic_images(3, 32, seed=7), synthetic_images(3, 32, seed=8)
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    assert not np.array_equal(a[0][1], c[0][1]) and not np.array_equal(a[0][1], a[1][1])
    assert all(img.std() > 10 for _, img in a)


# ---------------------------------------------------------------------------------------- files


def test_folder_is_recursive_sorted_and_case_insensitive(tmp_path):
    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for name in ("b.png", "a/c.PNG", "a/d.bmp")}
    for name, rgb in images.items():
        save_png(tmp_path / name, rgb) if not name.endswith(".bmp") else Image.fromarray(rgb).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = build_dataset(str(tmp_path), size=20, preprocess="resize")
    assert dataset.names == ["a/c.PNG", "a/d.bmp", "b.png"]
    for sample in dataset:
        assert torch.equal(sample.image, as_tensor(pil_resize(images[sample.name], 20, 20)))


def test_file_list_paths_are_relative_to_the_list(tmp_path):
    rng = np.random.default_rng(1)
    first, second = (rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2))
    save_png(tmp_path / "imgs" / "one.png", first)
    absolute = save_png(tmp_path / "elsewhere" / "two.png", second)
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    listing.write_text(f"# training images\n../imgs/one.png\n\n{absolute}\n")
    dataset = build_dataset(str(listing), size=16, preprocess="none")
    assert dataset.names == ["../imgs/one.png", str(absolute)]
    assert torch.equal(dataset[0].image, as_tensor(first)) and torch.equal(dataset[1].image, as_tensor(second))
    listing.write_text("../imgs/one.png\n../imgs/missing.png\n")
    with pytest.raises(InpaintlabError, match="missing.png"):
        build_dataset(str(listing), size=16)


def test_missing_and_empty_sources_are_clear_errors(tmp_path):
    with pytest.raises(InpaintlabError, match="does not exist"):
        ImageDataset(tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InpaintlabError, match=r"no images found in .*empty.*\.jpg"):
        ImageDataset(tmp_path / "empty")


def bad_image_folder(root):
    """Readable images (one a PNG named .jpg) and undecodable ones: truncated JPEG (passes PIL's verify),
    truncated PNG, zero bytes, text with an image extension, random bytes. Returns (good, bad) name lists."""
    rng = np.random.default_rng(0)
    photo = skimage.data.astronaut()[:64, :64]
    save_png(root / "a_good.png", np.full((16, 16, 3), 90, np.uint8))
    save_png(root / "c_good.png", np.full((16, 16, 3), 200, np.uint8))
    Image.fromarray(photo).save(root / "d_png_named.jpg", format="PNG")  # wrong extension, fine content
    Image.fromarray(photo).save(root / "full.jpeg", quality=90)
    whole = (root / "full.jpeg").read_bytes()
    (root / "full.jpeg").unlink()
    (root / "b_truncated.jpg").write_bytes(whole[: len(whole) * 3 // 5])
    png = (root / "a_good.png").read_bytes()
    (root / "e_truncated.png").write_bytes(png[: len(png) // 2])
    (root / "f_zero.png").write_bytes(b"")
    (root / "g_text.jpg").write_text("these are notes, not a photo\n")
    (root / "h_random.webp").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    good = ["a_good.png", "c_good.png", "d_png_named.jpg"]
    return good, ["b_truncated.jpg", "e_truncated.png", "f_zero.png", "g_text.jpg", "h_random.webp"]


def test_undecodable_files_raise_with_path_and_switch(tmp_path):
    good, bad = bad_image_folder(tmp_path)
    with Image.open(tmp_path / "b_truncated.jpg") as truncated:
        truncated.verify()  # the reported failure: a check with verify() lets this file through
    strict = ImageDataset(tmp_path, size=16)
    assert strict.names == sorted(good + bad)
    for i, name in enumerate(strict.names):
        if name in bad:
            with pytest.raises(InpaintlabError, match=rf"{name.replace('.', '[.]')}.*skip_bad=true"):
                strict[i]
        else:
            assert strict[i].image.shape == (3, 16, 16)


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_bad_catches_every_undecodable_file_when_it_is_decoded(tmp_path, workers):
    good, bad = bad_image_folder(tmp_path)
    lenient = ImageDataset(tmp_path, size=16, skip_bad=True, mask_source=build_mask_source("box", 16))
    assert len(lenient) == len(good) + len(bad) and lenient.newly_skipped() == []  # nothing decoded yet
    loader = DataLoader(lenient, batch_size=3, num_workers=workers, collate_fn=collate_samples)
    names = [n for batch in loader for n in batch.name]
    # each bad item is the next readable file after it: b -> c, e..h -> a (wrapping)
    assert names == ["a_good.png", "c_good.png", "c_good.png", "d_png_named.jpg"] + ["a_good.png"] * 4
    reported = lenient.newly_skipped()
    assert sorted(p.name for p, _ in reported) == bad  # each once, with its path and why
    assert all(str(p).startswith(str(tmp_path)) and "cannot read image" in why for p, why in reported)
    assert lenient.newly_skipped() == []
    assert sorted(p.name for p in lenient.skipped_files()) == bad
    again = [n for batch in loader for n in batch.name]  # flagged files are not decoded again
    assert again == names and lenient.newly_skipped() == []
    sample = lenient[1]  # b_truncated.jpg -> c_good.png, with item 1's own mask
    assert torch.allclose(sample.image, torch.full((3, 16, 16), 200 / 255))
    assert torch.equal(
        sample.mask, ImageDataset([tmp_path / "c_good.png"] * 2, size=16, mask_source=build_mask_source("box", 16))[1].mask
    )


def test_skip_bad_with_nothing_readable_is_a_clear_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "y.jpg").write_text("no")
    with pytest.raises(InpaintlabError, match=r"no readable image in .*all 2 files fail to decode"):
        ImageDataset(tmp_path, size=16, skip_bad=True)[0]


def test_load_image_normalises_modes_and_orientation(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = [200, 0, 40]
    rgba[..., 3] = [[0, 128, 255], [255, 255, 0]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    out = load_image(tmp_path / "alpha.png")
    alpha = rgba[..., 3:] / 255
    assert np.array_equal(out, np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 2].tolist() == [200, 0, 40]

    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    assert np.array_equal(load_image(tmp_path / "grey.png"), np.stack([grey] * 3, axis=2))
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    assert np.array_equal(load_image(tmp_path / "grey16.png"), np.stack([grey] * 3, axis=2))

    photo = skimage.data.astronaut()[:40, :60]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(photo).save(tmp_path / "rotated.png", exif=exif)
    assert np.array_equal(load_image(tmp_path / "rotated.png"), np.rot90(photo, k=-1))

    with pytest.raises(InpaintlabError, match="not found: .*absent.png"):
        load_image(tmp_path / "absent.png")


def test_folders_linked_into_a_data_root_are_followed_once(tmp_path):
    """Issue 20 item 11: symlinked subfolders were skipped in silence; a link back to an ancestor must not loop."""
    import os

    import numpy as np
    from PIL import Image

    from inpaintlab.data import _find_images

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    (root / "own").mkdir(parents=True)
    for folder, n in ((elsewhere, 2), (root / "own", 1)):
        for i in range(n):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{i}.png")
    os.symlink(elsewhere, root / "linked")
    os.symlink(root, root / "own" / "loop")  # a link to an ancestor
    names = [name for _, name in _find_images(root)]
    assert names == ["linked/0.png", "linked/1.png", "own/0.png"]
