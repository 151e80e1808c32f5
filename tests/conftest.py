"""Fixtures shared by several test files (only code that is the same wherever it is used)."""

import socket
import threading
import time

import pytest
import torch


def _two_hole_batch(batch=2, height=64, width=64, seed=0):
    """Seeded images (B,3,H,W) in [0,1] and masks (B,1,H,W) with one box hole per sample, plus the generator.

    Sample 0's hole is rows 10:40, columns 20:50; every other sample's is rows 30:60, columns 5:25.
    """
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=g)
    mask = torch.zeros(batch, 1, height, width)
    mask[0, :, 10:40, 20:50] = 1
    mask[1:, :, 30:60, 5:25] = 1
    return image, mask, g


@pytest.fixture
def two_hole_batch():
    """``two_hole_batch(batch=2, height=64, width=64, seed=0) -> (image, mask, generator)``."""
    return _two_hole_batch


@pytest.fixture(scope="module")
def live_server(server_app):
    """The module's ``server_app`` served by uvicorn in a thread on a free loopback port; yields the base URL.

    Stopped (and joined) at the end of the module.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(server_app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 20 s"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def long_jobs(monkeypatch):
    """Every server job (``serve._inpaint_png``) runs for 30 s unless its budget stops it, checking it every
    10 ms as the pipeline's loops do; yields the list of how each ended: (exception name or "finished",
    seconds)."""
    from inpaintlab import serve
    from inpaintlab.budget import JobStopped, check_budget

    ended = []

    def long_job(*args):
        began = time.perf_counter()
        try:
            while time.perf_counter() - began < 30:
                check_budget()
                time.sleep(0.01)
        except JobStopped as err:
            ended.append((type(err).__name__, time.perf_counter() - began))
            raise
        ended.append(("finished", time.perf_counter() - began))

    monkeypatch.setattr(serve, "_inpaint_png", long_job)
    return ended
