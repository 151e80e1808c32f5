"""The real page in headless Chromium (Playwright's Python driver, Debian's /usr/bin/chromium): open an
image, paint a stroke with the mouse, inpaint with telea, and check the result differs from the input
only inside the stroke. Undo, redo (strokes and renders), Clear and Compare are checked through the
pixels they lead to; Cancel through the server's queue. A screenshot is saved to
runs/test-artifacts/web_page.png.

Needs `apt-get install -y chromium` (CI installs it); skipped with that reason when it is absent.
"""

import base64
import contextlib
import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from inpaintlab.serve import create_app

ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT, BRUSH = 128, 96, 10
STROKE = ((20.0, 48.0), (100.0, 48.0))  # image coordinates of the painted segment

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")


def bar_picture():
    """A smooth gradient with a red bar under the stroke: Telea fills from the gradient around the
    hole, so every bar pixel in the stroke must change, and nothing outside it may."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    rgb = np.stack([xx / WIDTH, yy / HEIGHT, 0.5 + 0 * xx], axis=2) * 200
    picture = rgb.round().astype(np.uint8)
    picture[45:52, 25:96] = (255, 0, 0)
    return picture


def distance_to_stroke(height, width):
    """(H,W) Euclidean distance of each pixel centre to the stroke segment, in image pixels."""
    (x0, y0), (x1, y1) = STROKE
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    t = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0, 1)
    return np.hypot(xx - (x0 + t * (x1 - x0)), yy - (y0 + t * (y1 - y0)))


def expected_telea(picture, hole):
    """Independent reference: OpenCV Telea on the zeroed image, known pixels copied back."""
    out = cv2.inpaint(picture * (~hole)[:, :, None], hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    out[~hole] = picture[~hole]
    return out


@pytest.fixture(scope="module")
def server_app():
    """The app that ``live_server`` (conftest.py) serves to this module."""
    return create_app()


def run_inpaint(page):
    """Click Inpaint, wait for the result, and return the image the page shows, as (H,W,3) uint8."""
    with page.expect_response("**/api/inpaint") as response_info:
        page.click("#run")
    assert response_info.value.status == 200
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Done')")
    return shown_result(page)


def shown_result(page):
    """The image the result panel shows now, as (H,W,3) uint8."""
    shown = page.evaluate(
        """async () => { const response = await fetch(document.getElementById('result').src);
        return Array.from(new Uint8Array(await response.arrayBuffer())); }"""
    )
    return np.asarray(Image.open(io.BytesIO(bytes(shown))).convert("RGB"))


def canvas_pixels(page):
    """What the editing canvas shows (picture + red hole overlay), as (H,W,3) uint8."""
    width, height, data = page.evaluate(
        """() => { const c = document.getElementById('canvas');
        return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }"""
    )
    return np.asarray(data, np.uint8).reshape(height, width, 4)[:, :, :3]


def to_page(page, point):
    """Page coordinates of an image-coordinate point on the canvas (content box, CSS-scaled, scrolled)."""
    box = page.evaluate(
        """() => { const c = document.getElementById('canvas'); const r = c.getBoundingClientRect();
        return {x: r.left + c.clientLeft, y: r.top + c.clientTop, sx: c.clientWidth / c.width,
                sy: c.clientHeight / c.height}; }"""
    )
    return box["x"] + point[0] * box["sx"], box["y"] + point[1] * box["sy"]


def drag(page, start, end):
    """Mouse stroke between two image-coordinate points on the canvas."""
    page.mouse.move(*to_page(page, start))
    page.mouse.down()
    page.mouse.move(*to_page(page, end), steps=12)
    page.mouse.up()


@contextlib.contextmanager
def open_page(live_server, tmp_path, **context_options):
    """A fresh Chromium profile on the served page, models listed; fails on any page or console error."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    errors = []
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS, **context_options
        )
        try:
            page = context.new_page()
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(live_server + "/")
            page.wait_for_selector("#model option[value='telea']", state="attached")
            yield page
        finally:
            context.close()
    assert not errors, errors


def open_image(page, path, width):
    page.set_input_files("#image-file", str(path))
    page.wait_for_function(f"document.getElementById('canvas').width === {width}")


def page_mask(page):
    """The mask the page would send, (H,W) bool (True = hole)."""
    url = page.evaluate("() => maskCanvas.toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L")) > 127


def test_paint_a_stroke_and_inpaint_in_the_real_page(live_server, tmp_path):
    picture = bar_picture()
    image_path, mask_path = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.fromarray(picture).save(image_path)
    box_hole = np.zeros((HEIGHT, WIDTH), bool)
    box_hole[10:30, 70:110] = True
    Image.fromarray(box_hole.astype(np.uint8) * 255).save(mask_path)
    with open_page(live_server, tmp_path, viewport={"width": 1100, "height": 700}) as page:
        page.set_input_files("#image-file", str(image_path))
        page.wait_for_function(f"document.getElementById('canvas').width === {WIDTH}")
        page.select_option("#zoom", "1")  # 100 %: one screen px per image px, so the brush is BRUSH image px
        page.locator("#brush-size").fill(str(BRUSH))
        page.select_option("#model", "telea")
        page.select_option("#strategy", "pad")
        drag(page, *STROKE)
        result = run_inpaint(page)
        assert page.eval_on_selector("#result", "img => img.naturalWidth") == WIDTH
        # Undo keeps the stroke's box only (a full-size copy per stroke grew the renderer by GBs).
        kept = page.evaluate("undoStack.map((entry) => entry.data.width * entry.data.height)")
        assert len(kept) == 1 and kept[0] <= (STROKE[1][0] - STROKE[0][0] + BRUSH + 6) * (BRUSH + 6)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web_page.png"), full_page=True)

        # Undo: a second stroke, undone, must give the same result as the first stroke alone.
        drag(page, (10.0, 10.0), (60.0, 20.0))
        page.click("#undo")
        np.testing.assert_array_equal(run_inpaint(page), result)
        # An uploaded mask replaces the painted one: the result is Telea on exactly that mask.
        page.set_input_files("#mask-file", str(mask_path))
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Mask')")
        np.testing.assert_array_equal(run_inpaint(page), expected_telea(picture, box_hole))
        # Clear, then Inpaint: nothing to fill is said, and no request is sent.
        page.click("#clear")
        requests = []
        page.on("request", lambda r: requests.append(r.url) if "/api/inpaint" in r.url else None)
        page.click("#run")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Nothing to fill')")
        assert page.get_attribute("#status", "role") == "alert"
        # Esc drops the stroke being painted; Enter runs (here: still nothing to fill); ? shows the keys
        page.mouse.move(*to_page(page, (20.0, 20.0)))
        page.mouse.down()
        page.mouse.move(*to_page(page, (90.0, 30.0)), steps=6)
        page.keyboard.press("Escape")
        page.mouse.up()
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Cancelled the stroke')")
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Nothing to fill')")
        assert not requests
        page.keyboard.press("?")
        assert page.is_visible("#help") and "Ctrl+Shift+Z" in page.text_content("#help")
        page.keyboard.press("Escape")
        assert page.is_hidden("#help")
        # Iterate: the result becomes the picture; a stroke on it is filled; Undo twice steps back to the
        # picture before (the stroke, then the render); the download is named after the input.
        page.set_input_files("#mask-file", str(mask_path))
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Mask')")
        first = run_inpaint(page)
        assert page.get_attribute("#download", "download") == "photo-inpainted.png"
        page.click("#continue")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Editing the result')")
        drag(page, *STROKE)
        second = run_inpaint(page)
        assert (second[box_hole] == first[box_hole]).all()  # the first fill stays: it is the new input
        assert (second != first).any(axis=2)[distance_to_stroke(HEIGHT, WIDTH) < BRUSH / 2 - 1.5].any()
        page.keyboard.press("Control+z")
        page.keyboard.press("Control+z")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Back to the previous')")
        assert np.abs(canvas_pixels(page).astype(int) - picture).max() <= 1  # the picture before the render
        # Redo: the render, then its stroke; filled again, the same second result
        page.keyboard.press("Control+Shift+z")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Editing the result again')")
        assert np.abs(canvas_pixels(page).astype(int) - first).max() <= 1
        page.keyboard.press("Control+Shift+z")
        assert page.is_disabled("#redo")
        np.testing.assert_array_equal(run_inpaint(page), second)
        # Compare: another model on the same hole; holding the button shows the previous result
        page.select_option("#model", "navier_stokes")
        other = run_inpaint(page)
        assert (other != second).any() and "telea" in page.text_content("#compare")
        page.dispatch_event("#compare", "pointerdown")
        np.testing.assert_array_equal(shown_result(page), second)
        assert page.text_content("#result-label").startswith("telea")
        page.dispatch_event("#compare", "pointerup")
        np.testing.assert_array_equal(shown_result(page), other)
        page.select_option("#model", "telea")
        # Select object: a box dragged around the red bar becomes a mask that covers the bar.
        page.click("#clear")
        page.check("#select-mode")
        drag(page, (16.0, 36.0), (106.0, 62.0))
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Object selected')")
        covered = page.evaluate(
            """() => { const px = mask.getImageData(25, 45, 71, 7).data; let white = 0;
            for (let i = 0; i < px.length; i += 4) white += px[i] > 127; return white / (px.length / 4); }"""
        )
        assert covered > 0.95, covered
        page.uncheck("#select-mode")
        # Opening an image again clears the old result and its download link.
        page.set_input_files("#image-file", str(image_path))
        page.wait_for_function("document.getElementById('result').hidden === true")
        assert page.evaluate("document.getElementById('canvas').clientWidth") == WIDTH  # the zoom is kept
        assert page.is_hidden("#download")
        # Zoom 200 %: the canvas shows each pixel as 2x2, the brush keeps its size on screen (2*BRUSH
        # screen px = BRUSH image px), and a stroke still lands where it is drawn.
        page.select_option("#zoom", "2")
        assert page.evaluate("document.getElementById('canvas').clientWidth") == 2 * WIDTH
        page.locator("#brush-size").fill(str(2 * BRUSH))
        drag(page, *STROKE)
        zoomed = run_inpaint(page)

    assert result.shape == picture.shape
    changed = (result != picture).any(axis=2)
    distance = distance_to_stroke(HEIGHT, WIDTH)
    # Only inside the stroke (its radius plus 1.5 px for the rasterised round brush edge) ...
    assert not changed[distance > BRUSH / 2 + 1.5].any(), np.argwhere(changed & (distance > BRUSH / 2 + 1.5))[:5]
    zoomed_changed = (zoomed != picture).any(axis=2)  # the same at 200 %
    assert not zoomed_changed[distance > BRUSH / 2 + 1.5].any() and zoomed_changed[distance < BRUSH / 2 - 1.5].all()
    # ... and the red bar under the stroke's core is gone (Telea pulls in the gradient around it).
    core_bar = (distance < BRUSH / 2 - 1.5) & (picture == (255, 0, 0)).all(axis=2)
    assert core_bar.sum() > 300
    assert changed[core_bar].all()
    assert (result[core_bar][:, 0].astype(int) < 230).mean() > 0.9


def test_cancel_stops_a_running_job_and_the_server_is_idle_within_2_s(live_server, tmp_path, long_jobs):
    """A long job (one that would run 30 s, checking its budget as the pipeline does) is cancelled from the
    page: the server's queue is empty again within 2 s, and other requests are answered while it runs."""
    import time

    import httpx

    image_path = tmp_path / "photo.png"
    Image.fromarray(bar_picture()).save(image_path)
    status = lambda: httpx.get(f"{live_server}/api/status", timeout=5).json()  # noqa: E731
    with open_page(live_server, tmp_path) as page:
        open_image(page, image_path, WIDTH)
        drag(page, *STROKE)
        page.click("#run")
        deadline = time.monotonic() + 10
        while not status()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status()["running"]
        page.wait_for_function(
            "/Inpainting\\.\\.\\. [0-9.]+ s \\(running\\)/.test(document.getElementById('status').textContent)"
        )
        began = time.monotonic()
        assert httpx.get(f"{live_server}/api/models", timeout=5).status_code == 200  # answered meanwhile
        page.click("#cancel")
        while status()["running"] and time.monotonic() - began < 5:
            time.sleep(0.05)
        idle_after = time.monotonic() - began
        assert page.text_content("#status") == "Cancelled."
    assert idle_after < 2 and [how for how, _ in long_jobs] == ["JobCancelled"], (idle_after, long_jobs)


def test_a_phone_sees_the_canvas_and_inpaint_above_the_fold_with_40px_tap_targets(live_server, tmp_path):
    Image.fromarray(bar_picture()).save(tmp_path / "photo.png")
    phone = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 3}
    with open_page(live_server, tmp_path, **phone) as page:
        open_image(page, tmp_path / "photo.png", WIDTH)
        canvas, run = page.locator("#canvas").bounding_box(), page.locator("#run").bounding_box()
        assert canvas["y"] + canvas["height"] <= 844 and 0 <= run["x"] and run["x"] + run["width"] <= 390, (canvas, run)
        assert run["y"] + run["height"] <= 844 and canvas["width"] <= 390
        small = page.evaluate(
            """() => [...document.querySelectorAll('button, select, .controls label')]
                .filter((e) => e.offsetParent !== null)
                .map((e) => [e.id || e.textContent.trim().slice(0, 20), e.getBoundingClientRect()])
                .filter(([, r]) => r.width < 40 || r.height < 40).map(([name]) => name)"""
        )
        assert not small, small
        page.screenshot(path=str(ARTIFACTS / "web_phone.png"))


def test_select_an_object_with_a_box_on_a_built_in_photo_then_grow_and_shrink_it(live_server, tmp_path):
    """GrabCut from a box dragged around the cup and saucer of scikit-image's coffee photo: the mask covers
    them (IoU >= 0.7 with a hand-made mask: two ellipses traced on the photo); Grow and Shrink change the
    whole hole by N px."""
    from inpaintlab.data import builtin_photo_paths
    from inpaintlab.select import grow_mask

    path = builtin_photo_paths()["coffee"][0]
    hand = np.zeros((400, 600), np.uint8)
    cv2.ellipse(hand, (278, 230), (203, 155), 0, 0, 360, 1, -1)  # the saucer
    cv2.ellipse(hand, (290, 112), (118, 95), 0, 0, 360, 1, -1)  # the cup's rim above it
    with open_page(live_server, tmp_path, viewport={"width": 1100, "height": 900}) as page:
        open_image(page, path, 600)
        page.locator("#grow").fill("0")
        page.locator("#grow").blur()  # keys typed into a field stay there
        page.keyboard.press("s")
        assert page.is_checked("#select-mode")
        drag(page, (60.0, 8.0), (495.0, 395.0))
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Object selected')")
        selected = page_mask(page)
        # Grow / Shrink the whole hole by the px field (a disc), Undo takes it back
        page.locator("#grow").fill("5")
        page.click("#grow-mask")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Hole grown by 5 px')")
        np.testing.assert_array_equal(page_mask(page), grow_mask(selected, 5))
        page.click("#undo")
        np.testing.assert_array_equal(page_mask(page), selected)
        page.click("#shrink-mask")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Hole shrunk by 5 px')")
        np.testing.assert_array_equal(page_mask(page), grow_mask(selected, -5))
    iou = (selected & (hand > 0)).sum() / (selected | (hand > 0)).sum()
    assert iou >= 0.7, iou


def test_a_40px_brush_at_100_percent_on_a_3000x2000_photo_and_30_strokes_in_under_100_mb(live_server, tmp_path, monkeypatch):
    """At 100 % a 40 px brush paints a stroke 40 image px wide where it is drawn, and that is the mask the
    server receives; 30 more strokes raise the page's JS heap (DevTools protocol) by less than 100 MB."""
    from inpaintlab import serve

    received = []

    def keep_mask(catalog, limits, name, strategy, image_bytes, mask_bytes):
        received.append(np.asarray(Image.open(io.BytesIO(mask_bytes)).convert("L")) > 127)
        return image_bytes, 0.0, "pad"  # the photo back, as PNG: only the mask matters here

    monkeypatch.setattr(serve, "_inpaint_png", keep_mask)
    rng = np.random.default_rng(0)
    photo = cv2.resize(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8), (3000, 2000), interpolation=cv2.INTER_LINEAR)
    Image.fromarray(photo).save(tmp_path / "big.png", compress_level=1)
    with open_page(live_server, tmp_path, viewport={"width": 1100, "height": 900}) as page:
        open_image(page, tmp_path / "big.png", 3000)
        page.select_option("#zoom", "1")
        page.locator("#brush-size").fill("40")
        page.evaluate("() => { const s = document.getElementById('stage'); s.scrollLeft = 900; s.scrollTop = 800; }")
        cdp = page.context.new_cdp_session(page)
        cdp.send("HeapProfiler.collectGarbage")
        heap_before = cdp.send("Runtime.getHeapUsage")["usedSize"]
        drag(page, (1000.0, 1000.0), (1400.0, 1000.0))
        with page.expect_response("**/api/inpaint") as response_info:
            page.click("#run")
        assert response_info.value.status == 200
        for k in range(30):
            y = 900.0 + 12 * k
            drag(page, (950.0, y), (1500.0, y + 5))
        cdp.send("HeapProfiler.collectGarbage")
        heap_growth = cdp.send("Runtime.getHeapUsage")["usedSize"] - heap_before
        assert len(page.evaluate("undoStack")) == 30  # bounded (UNDO_DEPTH) and each a stroke's box
    (hole,) = received
    assert hole.shape == (2000, 3000)
    column = np.nonzero(hole[:, 1200])[0]
    assert 38 <= len(column) <= 42 and abs(column.mean() - 1000) <= 1.5, (len(column), column.mean())
    row = np.nonzero(hole[1000])[0]
    assert abs(row[0] - 980) <= 2 and abs(row[-1] - 1420) <= 2  # round caps 20 px beyond each end
    assert hole.sum() < 1.1 * (400 * 40 + np.pi * 20**2)  # nothing else
    assert heap_growth < 100 * 2**20, heap_growth / 2**20
