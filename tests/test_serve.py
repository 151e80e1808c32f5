"""The web server: API behaviour, hostile uploads (each a 4xx, server keeps serving), and a bounded
load test on loopback with latency percentiles written to runs/test-artifacts/load_test.json."""

import io
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image
from pngs import png_bytes, png_header_only

from inpaintlab import cli
from inpaintlab.checkpoint import save_checkpoint
from inpaintlab.models import create_model
from inpaintlab.serve import ServerLimits, create_app

ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"
LIMITS = ServerLimits(max_upload_bytes=2_000_000, max_pixels=1024 * 1024)


PICTURE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
HOLE = np.zeros((64, 64), bool)
HOLE[20:34, 12:50] = True
IMAGE_PNG, MASK_PNG = png_bytes(PICTURE), png_bytes(HOLE.astype(np.uint8) * 255)


def expected_telea(picture, hole):
    """Independent reference: OpenCV Telea on the zeroed image, known pixels copied back."""
    out = cv2.inpaint(picture * (~hole)[:, :, None], hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    out[~hole] = picture[~hole]
    return out


def decode(content):
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def valid_files():
    return {"image": ("photo.png", IMAGE_PNG, "image/png"), "mask": ("mask.png", MASK_PNG, "image/png")}


def upload(image_bytes, mask_bytes):
    return {"image": ("a.png", image_bytes), "mask": ("m.png", mask_bytes)}


# Each hostile upload with the status it must get: (name, files, form data, status).
HOSTILE = [
    ("truncated png", upload(IMAGE_PNG[: len(IMAGE_PNG) // 2], MASK_PNG), {}, 400),
    ("20000x20000 header", upload(png_header_only(20000, 20000), MASK_PNG), {}, 413),
    ("non-image bytes", upload(b"GIF89a? no: plain text behind a fake magic number", MASK_PNG), {}, 415),
    ("image as a text field", {"mask": ("m.png", MASK_PNG)}, {"image": "hello"}, 422),
    ("model as a file", {**valid_files(), "model": ("model.bin", b"\x00\x01")}, {}, 422),
    ("missing mask", {"image": ("a.png", IMAGE_PNG)}, {}, 422),
    ("mask of another size", upload(IMAGE_PNG, png_bytes(np.zeros((32, 64), np.uint8))), {}, 400),
    ("all-hole mask", upload(IMAGE_PNG, png_bytes(np.full((64, 64), 255, np.uint8))), {}, 400),
    ("unknown strategy", valid_files(), {"strategy": "zoom"}, 400),
    ("unknown model", valid_files(), {"model": "nope"}, 400),
    ("body over the limit", upload(b"\x89PNG" + bytes(2_100_000), MASK_PNG), {}, 413),
]


# Mixed into the load test. Not the oversized body: the server answers 413 from the declared length
# without reading the upload, so the client may see its unread upload cut off (tested with TestClient).
MIXED_IN = [h for h in HOSTILE if h[0] != "body over the limit"]


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    with TestClient(create_app(limits=LIMITS), base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_models_endpoint_and_openapi_document_the_api(client):
    info = client.get("/api/models").json()
    assert [m["name"] for m in info["models"]] == ["lgnet_compact", "telea", "navier_stokes"]  # shipped default first
    assert [m["source"] for m in info["models"]] == ["pretrained", "classical", "classical"]
    assert info["strategies"] == ["pad", "resize", "crop", "detail"] and info["default_model"] == "lgnet_compact"
    schema = client.get("/openapi.json").json()
    assert {"/api/models", "/api/inpaint"} <= set(schema["paths"])
    body = schema["paths"]["/api/inpaint"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_inpaint_returns_png_equal_to_telea_and_exact_outside_the_hole(client):
    response = client.post("/api/inpaint", files=valid_files(), data={"model": "telea", "strategy": "pad"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(decode(response.content), expected_telea(PICTURE, HOLE))
    assert response.headers["x-inpaint-model"] == "telea"


def test_empty_mask_returns_the_image(client):
    files = {"image": ("a.png", IMAGE_PNG), "mask": ("m.png", png_bytes(np.zeros((64, 64), np.uint8)))}
    response = client.post("/api/inpaint", files=files)
    assert response.status_code == 200
    np.testing.assert_array_equal(decode(response.content), PICTURE)


@pytest.mark.parametrize("name, files, data, status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_upload_is_a_4xx_and_the_server_keeps_serving(client, name, files, data, status):
    response = client.post("/api/inpaint", files=files, data=data)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    follow_up = client.post("/api/inpaint", files=valid_files())
    assert follow_up.status_code == 200


def test_checkpoints_are_served_by_stem_and_cached(tmp_path):
    from fastapi.testclient import TestClient

    model = create_model("lgnet_tiny")
    tensors = {f"generator.{k}": v for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / "tiny.safetensors", tensors, {"model": {"name": "lgnet_tiny", "kwargs": {}}})
    app = create_app(models=["telea"], checkpoints=[path], limits=LIMITS)
    catalog = app.state.catalog
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        names = [(m["name"], m["source"]) for m in test_client.get("/api/models").json()["models"]]
        assert names == [("telea", "classical"), ("tiny", "checkpoint")]
        response = test_client.post("/api/inpaint", files=valid_files(), data={"model": "tiny"})
        assert response.status_code == 200
        result = decode(response.content)
        np.testing.assert_array_equal(result[~HOLE], PICTURE[~HOLE])
        assert catalog.get("tiny") is catalog.get("tiny")


def test_a_checkpoint_that_vanished_is_503_naming_the_model_never_the_server_path(tmp_path, capsys):
    from fastapi.testclient import TestClient

    model = create_model("lgnet_tiny")
    tensors = {f"generator.{k}": v for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / "tiny.safetensors", tensors, {"model": {"name": "lgnet_tiny", "kwargs": {}}})
    app = create_app(models=["telea"], checkpoints=[path], limits=LIMITS)
    path.unlink()  # removed after start-up, before its first request
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        response = test_client.post("/api/inpaint", files=valid_files(), data={"model": "tiny"})
        assert response.status_code == 503 and "'tiny' cannot be loaded" in response.json()["detail"]
        assert str(tmp_path) not in response.text
        assert str(path) in capsys.readouterr().err  # the operator's log has the reason
        assert test_client.post("/api/inpaint", files=valid_files(), data={"model": "telea"}).status_code == 200


def test_serve_cli_rejects_an_unknown_model_before_listening(capsys):
    assert cli.main(["serve", "--model", "no_such_model", "--port", "1"]) == 2
    assert "no_such_model: neither a checkpoint file nor a registered model name" in capsys.readouterr().err


def test_serve_cli_serves_the_page_and_api_until_stopped(tmp_path):
    """`inpaintlab serve --model telea --port N` as a real process (README example, on a free port)."""
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "inpaintlab.cli", "serve", "--model", "telea", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, info = time.monotonic() + 60, None
        while info is None and time.monotonic() < deadline and process.poll() is None:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert info is not None, f"server did not answer within 60 s (exit code {process.poll()})"
        assert [m["name"] for m in info["models"]] == ["telea"]
        response = httpx.post(f"http://127.0.0.1:{port}/api/inpaint", files=valid_files(), timeout=30)
        np.testing.assert_array_equal(decode(response.content), expected_telea(PICTURE, HOLE))
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert f"serving on http://127.0.0.1:{port}/" in output


# --------------------------------------------------------------------------------------- load test


@pytest.fixture(scope="module")
def server_app():
    """The app that ``live_server`` (conftest.py) serves to this module: Telea, whose output is known exactly."""
    return create_app(models=["telea"], limits=LIMITS)


def test_load_200_requests_8_concurrent_with_hostile_uploads_mixed_in(live_server):
    """200 requests, 8 at a time, every 10th a hostile upload; bounded by a 90 s deadline."""
    total, concurrency, deadline = 200, 8, time.monotonic() + 90
    expected = expected_telea(PICTURE, HOLE)

    def one(i):
        if time.monotonic() > deadline:
            return i, None, 0.0, b"", "deadline"
        valid = ("valid", valid_files(), {}, 200)
        name, files, data, status = MIXED_IN[i // 10 % len(MIXED_IN)] if i % 10 == 9 else valid
        start = time.perf_counter()
        response = http.post("/api/inpaint", files=files, data=data)
        return i, (name, status, response.status_code), time.perf_counter() - start, response, None

    started = time.perf_counter()
    with httpx.Client(base_url=live_server, timeout=30, limits=httpx.Limits(max_connections=concurrency)) as http:
        with ThreadPoolExecutor(concurrency) as pool:
            outcomes = list(pool.map(one, range(total)))
    wall = time.perf_counter() - started
    assert all(o[4] is None for o in outcomes), "load test ran past its deadline"
    wrong = [(i, got) for i, got, _, _, _ in outcomes if got[1] != got[2]]
    assert not wrong, wrong
    valid = [(seconds, response) for _, got, seconds, response, _ in outcomes if got[0] == "valid"]
    assert len(valid) == 180
    for _, response in valid:
        np.testing.assert_array_equal(decode(response.content), expected)
    latencies = np.array([s for s, _ in valid]) * 1000
    inference = np.array([float(r.headers["x-inpaint-seconds"]) for _, r in valid]) * 1000
    report = {
        "requests": total,
        "concurrency": concurrency,
        "valid": len(valid),
        "hostile": total - len(valid),
        "errors": 0,
        "wall_seconds": round(wall, 3),
        "throughput_rps": round(total / wall, 1),
        "latency_ms": {f"p{q}": round(float(np.percentile(latencies, q)), 1) for q in (50, 90, 95, 99)}
        | {"max": round(float(latencies.max()), 1)},
        "server_inference_ms": {f"p{q}": round(float(np.percentile(inference, q)), 2) for q in (50, 99)},
        "image": "64x64 PNG, telea, strategy pad; client and server share one process",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "load_test.json").write_text(json.dumps(report, indent=2) + "\n")
    print("load test:", json.dumps(report))
    with httpx.Client(base_url=live_server, timeout=10) as http:
        assert http.get("/api/models").status_code == 200


def test_forged_host_and_cross_origin_posts_are_refused(client):
    """DNS rebinding: a page at evil.example resolving to 127.0.0.1 sends Host: evil.example; a cross-site
    form POST carries its own Origin. Both are refused before the body is read; the server's own page works."""
    assert client.get("/api/models", headers={"Host": "evil.example:8000"}).status_code == 400
    assert client.get("/api/models", headers={"Host": "localhost:8000"}).status_code == 200
    files = {"image": ("i.png", b"x", "image/png"), "mask": ("m.png", b"x", "image/png")}
    refused = client.post("/api/inpaint", files=files, headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403 and "cross-origin" in refused.json()["detail"]
    refused = client.post("/api/inpaint", files=files, headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    same = client.post("/api/inpaint", files=files, headers={"Origin": "http://127.0.0.1"})
    assert same.status_code == 415  # past the check: the bytes are not an image


def test_serve_on_a_port_in_use_is_one_line_and_never_says_serving(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--model", "telea", "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert f"cannot serve on 127.0.0.1:{port}" in captured.err and "serving on" not in captured.out
