"""Time limits and cancellation (issue 20, item 2: a per-job limit; a disconnected client's job cancelled):
``check_budget`` inside ``run_within``, and the pipeline's and the detail transfer's loops that call it."""

import threading
import time

import numpy as np
import pytest

from inpaintlab.budget import Budget, JobCancelled, JobTimedOut, check_budget, run_within
from inpaintlab.detail import add_detail
from inpaintlab.models import create_model
from inpaintlab.pipeline import InpaintPipeline


class CountingBudget(Budget):
    """A budget that counts its checks."""

    def __init__(self, seconds):
        super().__init__(seconds)
        self.checks = 0

    def check(self):
        self.checks += 1
        super().check()


def test_check_budget_is_a_no_op_outside_a_budget_and_raises_inside_one():
    check_budget()  # library, CLI and training never stop on their own
    spent = Budget(0.05)
    time.sleep(0.1)
    with pytest.raises(JobTimedOut, match="0.05 s limit per job"):
        run_within(spent, check_budget)
    cancelled = Budget(60)
    cancelled.cancel()
    with pytest.raises(JobCancelled, match="client went away"):
        run_within(cancelled, lambda: None)
    assert run_within(Budget(60), lambda: 7) == 7
    check_budget()  # the budget does not outlive run_within


def test_the_budget_belongs_to_the_thread_that_runs_the_job():
    budget = Budget(60)
    budget.cancel()
    seen = []
    other = threading.Thread(target=lambda: seen.append(check_budget()))

    def job():
        other.start()
        other.join()
        return "other thread ran"

    with pytest.raises(JobCancelled):
        run_within(budget, lambda: (check_budget(), job()))
    assert run_within(Budget(60), job) == "other thread ran" and seen == [None]


def test_a_timed_out_budget_stops_the_pipeline_between_forward_passes():
    model = create_model("lgnet_tiny").eval()
    forwards = []

    def slow_forward(module, args):
        forwards.append(1)
        time.sleep(0.2)

    model.register_forward_pre_hook(slow_forward)
    picture = np.random.default_rng(0).integers(0, 256, (64, 640, 3), dtype=np.uint8)
    hole = np.zeros((64, 640), bool)
    for k in range(6):  # six holes far apart: six crops, one forward each at batch 1
        hole[28:36, 40 + 100 * k : 48 + 100 * k] = True
    pipe = InpaintPipeline(model, train_size=64, crop_margin=8, merge_distance=0, batch_size=1, smooth_threshold=0)
    assert len(pipe._jobs(0, picture, hole, "crop")) == 6
    with pytest.raises(JobTimedOut):
        run_within(Budget(0.3), lambda: pipe(picture, hole, strategy="crop"))
    assert 1 <= len(forwards) < 6  # stopped after the limit, not at the end
    forwards.clear()
    pipe(picture, hole, strategy="crop")  # without a budget: every forward runs
    assert len(forwards) == 6


def test_the_detail_transfer_checks_its_budget_in_its_loops():
    rng = np.random.default_rng(0)
    photo = rng.random((400, 600, 3)).astype(np.float32)
    hole = np.zeros((400, 600), bool)
    hole[100:300, 200:400] = True
    coarse = np.full((100, 150, 3), 0.5, np.float32)
    budget = CountingBudget(60)
    run_within(budget, lambda: add_detail(photo, hole, coarse))
    assert budget.checks >= 4  # matching, propagation's two sweeps, the copy (+ the start)
    budget.cancel()
    with pytest.raises(JobCancelled):
        run_within(budget, lambda: add_detail(photo, hole, coarse))
