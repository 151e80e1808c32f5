"""Nothing lost, nothing silent: one run per folder, resume fallback past damaged checkpoints, logs cut back
to the resumed step, kill -9 inside a checkpoint write, older checkpoints without a content hash, and
undecodable images skipped and counted (issue 12; each failure it reported is reproduced here)."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_data import bad_image_folder
from test_train import tiny_config

from inpaintlab import InpaintlabError
from inpaintlab.checkpoint import load_checkpoint, verify_checkpoint
from inpaintlab.cli import main
from inpaintlab.config import DataConfig, save_config
from inpaintlab.train import Trainer

TESTS = Path(__file__).parent


def steps_logged(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def tensorboard_steps(run: Path, tag: str = "g/total") -> list[int]:
    """Steps of ``tag`` as TensorBoard shows them (it applies ``purge_step``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def assert_same_final_state(a: Path, b: Path, step: int) -> None:
    name = f"checkpoints/step_{step:08d}.safetensors"
    first, _ = load_checkpoint(a / name)
    second, _ = load_checkpoint(b / name)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def assert_same_rows(a: Path, b: Path) -> None:
    """metrics.jsonl rows equal except the measured speed."""

    def rows(run):
        return [
            {k: v for k, v in json.loads(line).items() if k != "images_per_s"}
            for line in (run / "metrics.jsonl").read_text().splitlines()
        ]

    assert rows(a) == rows(b)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The reference: 8 steps in one go, checkpoints every 2 (keeps 6 and 8), logs every 2."""
    run = tmp_path_factory.mktemp("straight") / "run"
    Trainer(tiny_config(max_steps=8, ckpt_every=2), run).fit()
    return run


# ------------------------------------------------------------------------------------- one run per folder


def test_a_second_run_into_a_run_folder_is_an_error_and_overwrite_moves_the_old_one_aside(tmp_path, capsys):
    save_config(tiny_config(ckpt_every=2), tmp_path / "tiny.toml")
    run = tmp_path / "R"
    args = ["train", "--config", str(tmp_path / "tiny.toml"), "--out", str(run), "--device", "cpu"]
    assert main([*args, "--set", "max_steps=4"]) == 0
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    # the reported failure: a second start silently restarted at step 0 in the same folder
    assert main([*args, "--set", "max_steps=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "already holds a run" in err and "checkpoints up to step 4" in err
    assert "--resume auto" in err and "--overwrite" in err
    assert {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # untouched
    assert main([*args, "--set", "max_steps=2", "--overwrite", "--resume", "auto"]) == 2
    assert "cannot be combined" in capsys.readouterr().err

    assert main([*args, "--set", "max_steps=2", "--overwrite"]) == 0
    (aside,) = tmp_path.glob("R.replaced-*")
    assert f"moved to {aside}" in capsys.readouterr().err
    assert {p.relative_to(aside): p.read_bytes() for p in aside.rglob("*") if p.is_file()} == before  # kept whole
    assert steps_logged(run) == [2] and sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000002.safetensors"]
    assert json.loads((run / "config.json").read_text())["max_steps"] == 2


def test_resume_auto_in_a_run_killed_before_its_first_checkpoint_starts_over_and_sets_the_logs_aside(tmp_path, straight):
    run = tmp_path / "run"
    Trainer(tiny_config(max_steps=8, ckpt_every=2), run).fit()
    for path in (run / "checkpoints").iterdir():  # as if killed at step 3: logs, no checkpoint
        path.unlink()
    (run / "summary.json").unlink()
    with pytest.raises(InpaintlabError, match="already holds a run"):
        Trainer(tiny_config(max_steps=8, ckpt_every=2), run)
    trainer = Trainer(tiny_config(max_steps=8, ckpt_every=2), run, resume="auto")
    assert trainer.step == 0
    trainer.fit()
    assert steps_logged(run) == [2, 4, 6, 8] and tensorboard_steps(run) == [2, 4, 6, 8]
    (aside,) = (run / "superseded").iterdir()
    assert aside.name.endswith("resume-step-0") and steps_logged(aside) == [2, 4, 6, 8] and (aside / "tb").is_dir()
    assert_same_final_state(straight, run, 8)


# ------------------------------------------------------------------------------------- resume fallback


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "zero bytes"])
def test_resume_auto_falls_back_past_a_damaged_newest_checkpoint(tmp_path, capsys, straight, damage):
    run = tmp_path / "run"
    Trainer(tiny_config(max_steps=6, ckpt_every=2, keep_checkpoints=3), run).fit()
    newest = run / "checkpoints" / "step_00000006.safetensors"
    data = bytearray(newest.read_bytes())
    if damage == "truncated":  # the reported failure: "not a readable inpaintlab checkpoint", no fallback
        data = data[: len(data) // 2]
    elif damage == "flipped byte":
        data[-5] ^= 0x40
    else:
        data = b""
    newest.write_bytes(bytes(data))
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 7, "g/to')  # a row cut off by the kill
    capsys.readouterr()

    resumed = Trainer(tiny_config(max_steps=8, ckpt_every=2, keep_checkpoints=3), run, resume="auto")
    assert resumed.step == 4
    resumed.fit()
    err = capsys.readouterr().err
    why = {"truncated": "cut short", "flipped byte": "content hash mismatch", "zero bytes": "too short"}[damage]
    assert f"skipped {newest}: " in err and why in err
    assert f"resuming from {run / 'checkpoints' / 'step_00000004.safetensors'} (step 4; content hash verified)" in err
    # logs cut back to step 4: one series, in the JSON lines and in TensorBoard
    assert steps_logged(run) == [2, 4, 6, 8] and tensorboard_steps(run) == [2, 4, 6, 8]
    assert_same_rows(straight, run)
    assert_same_final_state(straight, run, 8)
    # nothing lost: the damaged file and the cut rows are set aside
    (aside,) = (run / "superseded").iterdir()
    assert (aside / "checkpoints" / newest.name).read_bytes() == bytes(data)
    assert [line.split(",")[0] for line in (aside / "metrics.jsonl").read_text().splitlines()] == ['{"step": 6', '{"step": 7']
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from"].endswith("step_00000004.safetensors") and summary["resume_step"] == 4
    assert summary["skipped_checkpoints"][0]["file"] == str(newest) and why in summary["skipped_checkpoints"][0]["reason"]


def test_resume_auto_with_no_checkpoint_that_verifies_is_an_error(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(max_steps=2), run).fit()
    (run / "checkpoints" / "step_00000002.safetensors").write_bytes(b"junk")
    with pytest.raises(InpaintlabError, match=r"no checkpoint in .* verifies \(step_00000002.safetensors: .*too short"):
        Trainer(tiny_config(max_steps=4), run, resume="auto")


def test_explicit_resume_from_an_older_checkpoint_cuts_the_logs_and_sets_later_checkpoints_aside(tmp_path, straight):
    run = tmp_path / "run"
    Trainer(tiny_config(max_steps=8, ckpt_every=2, keep_checkpoints=0), run).fit()
    later = {n: (run / "checkpoints" / n).read_bytes() for n in ("step_00000006.safetensors", "step_00000008.safetensors")}
    Trainer(tiny_config(max_steps=8, ckpt_every=2), run, resume=run / "checkpoints" / "step_00000004.safetensors").fit()
    # the reported failure: rows from step 4 on appeared twice and curves.png drew a loop
    assert steps_logged(run) == [2, 4, 6, 8] and tensorboard_steps(run) == [2, 4, 6, 8]
    assert_same_final_state(straight, run, 8)
    (aside,) = (run / "superseded").iterdir()
    assert {n: (aside / "checkpoints" / n).read_bytes() for n in later} == later  # not overwritten: set aside
    with pytest.raises(InpaintlabError, match="cut short"):
        cut = tmp_path / "cut.safetensors"
        cut.write_bytes(later["step_00000008.safetensors"][:1000])
        Trainer(tiny_config(max_steps=8), tmp_path / "other", resume=cut)


def test_checkpoints_written_before_content_hashes_still_resume(tmp_path, capsys, straight):
    run = tmp_path / "run"
    Trainer(tiny_config(max_steps=4, ckpt_every=2), run).fit()
    path = run / "checkpoints" / "step_00000004.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata()
    header = json.loads(metadata["inpaintlab"])
    del header["content_sha256"]  # exactly what the code before this change wrote
    save_file(load_file(str(path)), str(path), metadata={"inpaintlab": json.dumps(header)})
    assert verify_checkpoint(path) == (header, False)
    capsys.readouterr()
    Trainer(tiny_config(max_steps=8, ckpt_every=2), run, resume="auto").fit()
    assert "(step 4; header and sizes checked; no content hash (older file))" in capsys.readouterr().err
    assert_same_final_state(straight, run, 8)
    assert json.loads((run / "summary.json").read_text())["content_hash_verified"] is False


# ------------------------------------------------------------------------------------- kill -9 in save

_CHILD = """
import os, sys, time
sys.path.insert(0, {tests!r})
from test_train import tiny_config
import inpaintlab.checkpoint as checkpoint
import inpaintlab.train as train
moment = {moment!r}
real_save_file, real_save_checkpoint = checkpoint.save_file, checkpoint.save_checkpoint

def save_file(tensors, filename, metadata=None):  # writing the temp file of step 4: stop half way
    real_save_file(tensors, filename, metadata=metadata)
    if moment == "mid-write" and ".step_00000004." in filename:
        data = open(filename, "rb").read()
        with open(filename, "wb") as fh:
            fh.write(data[: len(data) // 2])
        print("INSIDE SAVE", flush=True)
        time.sleep(120)

def save_checkpoint(path, tensors, header):  # step 4 renamed into place, keep_checkpoints not applied yet
    result = real_save_checkpoint(path, tensors, header)
    if moment == "after-rename" and header["step"] == 4:
        print("INSIDE SAVE", flush=True)
        time.sleep(120)
    return result

checkpoint.save_file, train.save_checkpoint = save_file, save_checkpoint
train.Trainer(tiny_config(max_steps=8, ckpt_every=2), {run!r}).fit()
"""


@pytest.mark.parametrize("moment,resumed_step", [("mid-write", 2), ("after-rename", 4)])
def test_kill_9_inside_a_checkpoint_write_leaves_a_resumable_run(tmp_path, straight, moment, resumed_step):
    run = tmp_path / "run"
    threads = str(torch.get_num_threads())  # the child computes with as many threads as this process: same bits
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(tests=str(TESTS), moment=moment, run=str(run))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "INSIDE SAVE"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    leftovers = list((run / "checkpoints").glob(".step_*.tmp"))
    assert len(leftovers) == (moment == "mid-write")
    resumed = Trainer(tiny_config(max_steps=8, ckpt_every=2), run, resume="auto")
    assert resumed.step == resumed_step
    resumed.fit()
    assert not list((run / "checkpoints").glob(".step_*")) and steps_logged(run) == [2, 4, 6, 8]
    assert tensorboard_steps(run) == [2, 4, 6, 8]
    assert_same_rows(straight, run)
    assert_same_final_state(straight, run, 8)


# ------------------------------------------------------------------------------------- undecodable images


@pytest.mark.parametrize("workers", [0, 1])
def test_skip_bad_training_skips_each_undecodable_image_once_and_counts_it(tmp_path, capsys, workers):
    images = tmp_path / "images"
    images.mkdir()
    good, bad = bad_image_folder(images)
    data = DataConfig(root=str(images), size=32, flip=False, val_count=0, num_workers=workers)
    cfg = tiny_config(data=data, batch_size=2, max_steps=8, ckpt_every=0)
    # the reported failure: without the switch the run dies at the first bad file; the error says which and how
    with pytest.raises(InpaintlabError) as failed:
        Trainer(cfg, tmp_path / "strict").fit()
    assert re.fullmatch(r"cannot read image .*(truncated|zero|text|random).*; set data\.skip_bad=true.*", str(failed.value))
    assert "\n" not in str(failed.value)  # also when a DataLoader worker raised it
    lenient = tiny_config(data=dataclasses.replace(data, skip_bad=True), batch_size=2, max_steps=8, ckpt_every=0)
    capsys.readouterr()
    logs = Trainer(lenient, tmp_path / "run").fit()  # 8 steps = two epochs: every file comes up twice
    assert np.isfinite(logs["g/total"])
    err = capsys.readouterr().err
    for name in bad:
        assert err.count(f"skipped unreadable image {images / name}: ") == 1, name
    assert not any(name in err for name in good)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["skipped_images"] == {"count": len(bad), "files": sorted(str(images / n) for n in bad)}
    assert f"{len(bad)} unreadable image(s) skipped" in err


def test_a_second_run_into_a_folder_in_use_is_refused_at_once(tmp_path):
    """Two `train` runs into one --out used to both finish and mix their logs and checkpoints. The first
    holds an OS lock on the folder for its life; a second process is refused before writing anything, and
    the folder is free again the moment the first process ends."""
    import subprocess
    import sys

    from inpaintlab.errors import InpaintlabError
    from inpaintlab.run_folder import lock_run_folder

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from inpaintlab.run_folder import lock_run_folder; h = lock_run_folder({str(out)!r}); "
            "print('locked', flush=True); import time; time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InpaintlabError, match=f"in use by another training run \\(process {holder.pid}\\)"):
            lock_run_folder(out)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    finally:
        holder.kill()
        holder.wait()
    assert lock_run_folder(out) is lock_run_folder(out)  # free after the holder's kill -9; ours to take again
    (tmp_path / "file").write_text("x")
    with pytest.raises(InpaintlabError, match="is a file"):
        lock_run_folder(tmp_path / "file")


def test_resume_auto_removes_partial_checkpoint_writes_of_a_killed_run(tmp_path, capsys):
    """kill -9 inside a checkpoint write left a temporary file (ours, or safetensors' own .tmpXXXXXX) of the
    checkpoint's size; the next run into the folder (which it holds alone) removes them and says so."""
    run = tmp_path / "run"
    Trainer(tiny_config(max_steps=2, ckpt_every=2), run).fit()
    ours = run / "checkpoints" / ".step_00000004.safetensors.abc123.tmp"
    theirs = run / "checkpoints" / ".tmpXyZ123"
    for stale in (ours, theirs):
        stale.write_bytes(b"\0" * 4096)
    Trainer(tiny_config(max_steps=4, ckpt_every=2), run, resume="auto").fit()
    assert not ours.exists() and not theirs.exists()
    assert "a checkpoint write cut short by a killed run" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000002.safetensors", "step_00000004.safetensors"]
