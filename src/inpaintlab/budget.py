"""Time limits and cancellation for long work, checked cooperatively (the server's per-job limit).

A job runs inside ``run_within(budget, job)``; the loops that can take long (the pipeline's per-image and
per-batch steps, the smooth-region refill, the detail transfer's matching and propagation) call
``check_budget()``, which raises ``JobTimedOut`` past the budget's seconds or ``JobCancelled`` once someone
called ``budget.cancel()`` (a client that went away). Outside ``run_within`` it does nothing, so the library,
the CLI and training never stop on their own. A single torch or OpenCV call is not interrupted: the size
limits bound those.

>>> budget = Budget(seconds=60)
>>> run_within(budget, lambda: 1 + 1)
2
>>> budget.cancel()
>>> run_within(budget, check_budget)
Traceback (most recent call last):
...
inpaintlab.budget.JobCancelled: the job was cancelled: its client went away
"""

import contextvars
import threading
import time
from typing import Callable, TypeVar

from .errors import InpaintlabError

T = TypeVar("T")


class JobStopped(InpaintlabError):
    """A job stopped before its end by its budget."""


class JobTimedOut(JobStopped):
    """The job ran past its time limit."""


class JobCancelled(JobStopped):
    """The job was cancelled (its client went away, the server is shutting down)."""


class Budget:
    """``seconds`` of work from construction, and a cancel flag another thread may set."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.perf_counter()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise JobCancelled("the job was cancelled: its client went away")
        if time.perf_counter() - self.started > self.seconds:
            raise JobTimedOut(
                f"the job ran past this server's {self.seconds:g} s limit per job and was stopped; "
                "try a smaller image or hole, or strategy resize"
            )


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("inpaintlab_budget", default=None)


def check_budget() -> None:
    """Raise ``JobStopped`` when the running job's budget is spent or cancelled; no-op outside a budget."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.check()


def run_within(budget: Budget, job: Callable[[], T]) -> T:
    """``job()`` with ``budget`` as the budget ``check_budget`` sees (in this thread)."""
    token = _CURRENT.set(budget)
    try:
        budget.check()
        return job()
    finally:
        _CURRENT.reset(token)


__all__ = ["Budget", "JobCancelled", "JobStopped", "JobTimedOut", "check_budget", "run_within"]
