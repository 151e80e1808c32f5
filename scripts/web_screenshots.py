"""The README's two screenshots of the web page, made in headless Chromium (Playwright, Debian's chromium):
the editor with the spoon of scikit-image's coffee photo painted as the hole, and the page after Inpaint
with the shipped default model (input | result).

    .venv/bin/python scripts/web_screenshots.py --out docs
"""

import argparse
import io
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from inpaintlab.data import builtin_photo_paths
from inpaintlab.serve import create_app


def spoon_mask(height: int, width: int) -> np.ndarray:
    """The spoon of the coffee photo (600x400), traced by hand: its handle and bowl, white = hole."""
    hole = np.zeros((height, width), np.uint8)
    cv2.line(hole, (413, 72), (382, 238), 1, 22)
    cv2.ellipse(hole, (366, 285), (44, 48), -10, 0, 360, 1, -1)
    return cv2.dilate(hole, np.ones((5, 5), np.uint8)) * 255


def serve_in_thread(app) -> str:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def save_jpeg(png: bytes, path: Path) -> None:
    Image.open(io.BytesIO(png)).convert("RGB").save(path, quality=85, optimize=True)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="folder for web_editor.jpg and web_before_after.jpg")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    photo = builtin_photo_paths()["coffee"][0]
    base = serve_in_thread(create_app())
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        mask_path = Path(tmp) / "coffee.png"  # named like the photo: the download is named after the photo
        Image.fromarray(spoon_mask(400, 600)).save(mask_path)
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(base + "/")
        page.wait_for_selector("#model option", state="attached")
        page.set_input_files("#image-file", str(photo))
        page.wait_for_function("document.getElementById('canvas').width === 600")
        page.set_input_files("#mask-file", str(mask_path))
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Mask')")
        save_jpeg(page.screenshot(), out / "web_editor.jpg")
        page.click("#run")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Done')", timeout=120_000)
        save_jpeg(page.screenshot(full_page=True), out / "web_before_after.jpg")
        browser.close()


if __name__ == "__main__":
    main()
