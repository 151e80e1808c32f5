"""The server under contention (issue 20, items 2-3): one job at a time, a bounded queue answered with 503 +
Retry-After when full, queue wait reported apart from compute, pad refused on large pictures, a per-job
time limit, and a running job cancelled when its client goes away."""

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from inpaintlab import serve
from inpaintlab.serve import ServerLimits, create_app

SLOW_SECONDS = 1.0


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server_app():
    """Telea behind a queue of one waiting job (``live_server`` in conftest.py serves it over loopback)."""
    return create_app(models=["telea"], limits=ServerLimits(max_waiting=1, max_pad_pixels=64 * 64))


@pytest.fixture
def slow_jobs(monkeypatch):
    """Every job takes at least SLOW_SECONDS (a large photo, say), so requests pile up; counts the jobs run."""
    real, ran = serve._inpaint_png, []

    def slow(*args):
        time.sleep(SLOW_SECONDS)
        ran.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(serve, "_inpaint_png", slow)
    return ran


def files(side: int = 32):
    picture = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    hole = np.zeros((side, side), np.uint8)
    hole[8:16, 8:16] = 255
    return {"image": ("i.png", png(picture), "image/png"), "mask": ("m.png", png(hole), "image/png")}


def test_a_full_queue_answers_503_with_retry_after_and_reports_queue_wait_apart(live_server, slow_jobs):
    def post(_):
        with httpx.Client(base_url=live_server, timeout=30) as client:
            return client.post("/api/inpaint", files=files())

    with ThreadPoolExecutor(3) as pool:  # one runs, one waits, one finds the queue full
        futures = [pool.submit(post, i) for i in range(3)]
        responses = [f.result() for f in futures]
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 503], codes
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["Retry-After"] == "5" and "busy" in busy.json()["detail"]
    done = sorted((r for r in responses if r.status_code == 200), key=lambda r: float(r.headers["X-Inpaint-Queue-Seconds"]))
    assert float(done[0].headers["X-Inpaint-Queue-Seconds"]) < 0.5 * SLOW_SECONDS  # the first ran at once
    assert float(done[1].headers["X-Inpaint-Queue-Seconds"]) > 0.5 * SLOW_SECONDS  # the second waited for it
    for response in done:  # the job's own compute (a fast Telea fill; the delay sits outside it), never the wait
        assert float(response.headers["X-Inpaint-Seconds"]) < 0.5 * SLOW_SECONDS
    assert len(slow_jobs) == 2


def test_a_waiting_client_that_goes_away_is_never_run(live_server, slow_jobs):
    with httpx.Client(base_url=live_server, timeout=30) as client:
        first = threading.Thread(target=client.post, args=("/api/inpaint",), kwargs={"files": files()})
        first.start()
        time.sleep(0.2)
        with pytest.raises(httpx.ReadTimeout):  # gives up while waiting behind the first
            httpx.post(f"{live_server}/api/inpaint", files=files(), timeout=0.4)
        first.join()
    time.sleep(SLOW_SECONDS + 0.5)
    assert len(slow_jobs) == 1


def test_pad_on_a_large_picture_is_refused_for_networks_with_the_limit_named(live_server):
    """The limit applies to networks (their cost explodes with size); Telea's pad is its normal way."""
    response = httpx.post(f"{live_server}/api/inpaint", files=files(96), data={"strategy": "pad"}, timeout=30)
    assert response.status_code == 200  # telea: not a network
    from inpaintlab.pipeline import InpaintPipeline
    from inpaintlab.serve import _inpaint_png

    class Catalog:
        lock = threading.Lock()

        def get(self, name):
            return InpaintPipeline.from_pretrained()

    with pytest.raises(serve.InpaintlabError, match="strategy pad runs the network on all 9,216 pixels"):
        _inpaint_png(
            Catalog(), ServerLimits(max_pad_pixels=64 * 64), "lgnet_compact", "pad", files(96)["image"][1], files(96)["mask"][1]
        )


def test_select_returns_the_object_inside_a_box_as_a_grown_mask(live_server):
    """/api/select: GrabCut on a textured background with a coloured disc; the mask covers the disc (grown
    by the asked margin) and little else; an empty box is a 400 with the reason."""
    import cv2

    rng = np.random.default_rng(0)
    picture = (120 + 25 * rng.standard_normal((120, 160, 3))).clip(0, 255).astype(np.uint8)
    cv2.circle(picture, (80, 60), 28, (30, 60, 220), -1)
    disc = np.zeros((120, 160), np.uint8)
    cv2.circle(disc, (80, 60), 28, 1, -1)
    data = {"x0": "40", "y0": "20", "x1": "122", "y1": "102", "grow": "4"}
    response = httpx.post(
        f"{live_server}/api/select", files={"image": ("p.png", png(picture), "image/png")}, data=data, timeout=30
    )
    assert response.status_code == 200, response.text
    hole = np.asarray(Image.open(io.BytesIO(response.content))) > 127
    assert hole[disc > 0].mean() > 0.98  # the whole object
    grown = cv2.dilate(disc, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13))) > 0
    assert hole[~grown].mean() < 0.01  # and the asked margin, not the background
    empty = httpx.post(
        f"{live_server}/api/select", files={"image": ("p.png", png(picture), "image/png")}, data={**data, "x1": "40"}, timeout=30
    )
    assert empty.status_code == 400 and "box" in empty.json()["detail"]


@pytest.fixture
def endless_jobs(long_jobs, monkeypatch, server_app):
    """``long_jobs`` (conftest.py) on a server whose per-job limit is 0.5 s."""
    monkeypatch.setattr(server_app.state.jobs, "job_seconds", 0.5)
    return long_jobs


def test_a_job_past_its_time_limit_is_stopped_with_503_and_the_next_one_runs(live_server, endless_jobs):
    with httpx.Client(base_url=live_server, timeout=30) as client:
        began = time.perf_counter()
        response = client.post("/api/inpaint", files=files())
        assert response.status_code == 503 and "0.5 s limit per job" in response.json()["detail"]
        assert time.perf_counter() - began < 3
        assert [how for how, _ in endless_jobs] == ["JobTimedOut"]
        response = client.post("/api/inpaint", files=files())  # the queue is free again
        assert response.status_code == 503 and len(endless_jobs) == 2


def test_a_running_job_whose_client_went_away_is_cancelled(live_server, endless_jobs, server_app, monkeypatch):
    monkeypatch.setattr(server_app.state.jobs, "job_seconds", 30.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{live_server}/api/inpaint", files=files(), timeout=0.5)
    deadline = time.monotonic() + 5
    while not endless_jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert endless_jobs and endless_jobs[0][0] == "JobCancelled" and endless_jobs[0][1] < 3, endless_jobs


def test_grow_and_shrink_a_mask_by_n_pixels(live_server):
    """/api/grow: the mask dilated (by > 0) or eroded (< 0) with a disc; out-of-range and non-images refused."""
    import cv2

    hole = np.zeros((60, 80), np.uint8)
    cv2.circle(hole, (40, 30), 12, 255, -1)
    hole[5:8, 5:70] = 255  # a thin stroke: gone after shrinking by 3
    answers = {}
    for by in (4, -3):
        response = httpx.post(f"{live_server}/api/grow", files={"mask": ("m.png", png(hole), "image/png")}, data={"by": str(by)})
        assert response.status_code == 200, response.text
        answers[by] = np.asarray(Image.open(io.BytesIO(response.content))) > 127
    disc = lambda r: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))  # noqa: E731
    np.testing.assert_array_equal(answers[4], cv2.dilate(hole, disc(4)) > 127)
    np.testing.assert_array_equal(answers[-3], cv2.erode(hole, disc(3)) > 127)
    assert answers[4].sum() > (hole > 0).sum() > answers[-3].sum() and not answers[-3][5:8].any()
    too_far = httpx.post(f"{live_server}/api/grow", files={"mask": ("m.png", png(hole), "image/png")}, data={"by": "65"})
    assert too_far.status_code == 400 and "-64..64" in too_far.json()["detail"]
    not_image = httpx.post(f"{live_server}/api/grow", files={"mask": ("m.png", b"not a png", "image/png")}, data={"by": "2"})
    assert not_image.status_code == 415
