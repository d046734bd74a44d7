"""Several batch runs on one output folder: per-scene claims, the merged manifest, temporary files.

The runs are real processes (``subprocess``): two library runs started at the same instant (a file
barrier), a process that holds a claim while a run waits for it, and one killed holding a claim.
The model is a small real ONNX model (``tests/runtime/_models.py``); every record names the process that
sharpened its scene, so a scene done twice shows. The CLI test runs ``ssc-edge batch`` twice at once with the
shipped model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.batch import MANIFEST_NAME, BatchConfig, read_manifest, run_batch
from ssc_edge.batch.manifest import merge_records
from ssc_edge.demo import demo_scene
from ssc_edge.errors import OptionError
from ssc_edge.io.output import claim_holder, claim_output, claim_path

REPO = Path(__file__).resolve().parents[2]

_RUN_SCRIPT = """
import json, os, sys, time
from pathlib import Path

from ssc_edge.batch import BatchConfig, run_batch

folder, out, model, barrier = map(Path, sys.argv[1:5])
(barrier / str(os.getpid())).touch()
while len(list(barrier.iterdir())) < 2:  # both runs plan and start together
    time.sleep(0.005)
config = BatchConfig(mode="infer", model=model, output_format="npz", in_process=True, precision="fp32")
result = run_batch([folder], out, config)
print(json.dumps(result.records))
"""

_HOLD_SCRIPT = """
import os, sys
from pathlib import Path

from ssc_edge.io.output import claim_output, claim_path

claim = claim_output(claim_path(Path(sys.argv[1])))
print("held" if claim is not None else "busy", flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), 9)  # dies holding it: the claim file stays, the kernel drops the lock
sys.stdin.read()  # holds it until the test closes our stdin, then exits without releasing (as a crash would)
"""


def write_scene(path: Path, *, size: int = 32, seed: int = 0) -> Path:
    scene = demo_scene(size=size, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{band: scene.bands[band] for band in FINE_BANDS + COARSE_BANDS})
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small real ssc-edge ONNX model."""
    from tests.runtime._models import write_model

    return write_model(tmp_path_factory.mktemp("model") / "small.onnx", blocks=1, width=4)


def _config(model: Path, **options) -> BatchConfig:
    return BatchConfig(mode="infer", model=model, output_format="npz", in_process=True, precision="fp32", **options)


def _scenes(folder: Path, count: int) -> list[str]:
    names = [f"s{k:02d}" for k in range(count)]
    for seed, name in enumerate(names):
        write_scene(folder / f"{name}.npz", seed=seed)
    return names


def _listing(out: Path, names: list[str]) -> list[str]:
    return sorted([MANIFEST_NAME] + [f"{n}_sharpened.{ext}" for n in names for ext in ("npz", "json")])


def test_two_runs_share_one_folder_and_do_every_scene_once(tmp_path, model):
    names = _scenes(tmp_path / "in", 10)
    script, barrier, out = tmp_path / "run.py", tmp_path / "barrier", tmp_path / "out"
    script.write_text(_RUN_SCRIPT)
    barrier.mkdir()
    args = [sys.executable, str(script), tmp_path / "in", out, model, barrier]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) for _ in "ab"]
    outcomes = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outcomes]

    sharpened_by: dict[str, int] = {}  # scene -> the run that sharpened it, from each run's own records
    for run, (stdout, _) in zip(runs, outcomes, strict=True):
        records = json.loads(stdout)
        assert [r["status"] for r in records] == ["done"] * len(names)  # each run ends knowing every scene
        mine = [r for r in records if not r.get("skipped")]
        assert mine and all(r["pid"] == run.pid for r in mine)  # both runs did a share of the scenes
        for record in mine:
            assert record["name"] not in sharpened_by, record["name"]  # no scene sharpened by both
            sharpened_by[record["name"]] = run.pid
    assert sorted(sharpened_by) == [f"{n}_sharpened" for n in names]  # every scene exactly once
    manifest = read_manifest(out)
    assert manifest["summary"]["done"] == len(names) and manifest["summary"]["pending"] == 0
    assert sorted(r["pid"] for r in manifest["runs"].values()) == sorted(run.pid for run in runs)
    assert {r["name"]: r["pid"] for r in manifest["scenes"]} == sharpened_by  # each names the run that sharpened it
    assert {r["name"]: int(r["run"].split(":")[1]) for r in manifest["scenes"]} == sharpened_by
    assert sorted(p.name for p in out.iterdir()) == _listing(out, names)  # no claim, lock or temporary file left

    # A third run (past the barrier: it holds two files) finds everything done: nothing is sharpened again.
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert rerun.returncode == 0, rerun.stderr
    assert all(r.get("skipped") for r in json.loads(rerun.stdout))
    assert {r["name"]: r["pid"] for r in read_manifest(out)["scenes"]} == sharpened_by
    assert sorted(p.name for p in out.iterdir()) == _listing(out, names)


def _hold(output: Path, how: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_SCRIPT, str(output), how], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path, model):
    scene = write_scene(tmp_path / "in" / "a.npz")
    out = tmp_path / "out"
    out.mkdir()
    holder = _hold(out / "a_sharpened.npz", "kill")
    assert holder.wait(timeout=30) == -signal.SIGKILL
    claim = claim_path(out / "a_sharpened.npz")
    assert claim_holder(claim)["pid"] == holder.pid  # the dead process's claim file is still there
    leftover = out / ".a_sharpened.npz.dead1.npz"  # and a temporary file it was writing
    leftover.write_bytes(b"half")
    config = _config(model)
    record = run_batch([scene], out, config).records[0]
    assert record["status"] == "done" and record["pid"] == os.getpid() and not record.get("skipped")
    assert sorted(p.name for p in out.iterdir()) == _listing(out, ["a"])


def test_a_scene_held_by_a_live_run_is_skipped_then_taken_over_when_it_dies(tmp_path, model):
    first, second = write_scene(tmp_path / "in" / "a.npz", seed=1), write_scene(tmp_path / "in" / "b.npz", seed=2)
    out = tmp_path / "out"
    out.mkdir()
    holder = _hold(out / "a_sharpened.npz", "hold")
    theirs = out / ".a_sharpened.npz.live1.npz"  # the other run's temporary file: ours must not touch it
    theirs.write_bytes(b"being written")
    config = _config(model)
    result = {}
    batch = threading.Thread(target=lambda: result.update(r=run_batch([first, second], out, config)))
    batch.start()
    try:
        deadline = time.monotonic() + 30
        while True:  # b is done, a is recorded as held by the other process, and this run waits for it
            scenes = {r["name"]: r for r in (read_manifest(out) or {}).get("scenes", [])}
            if scenes.get("b_sharpened", {}).get("status") == "done" and "claimed_by" in scenes["a_sharpened"]:
                break
            assert time.monotonic() < deadline, scenes
            time.sleep(0.05)
        assert scenes["a_sharpened"]["status"] == "pending"
        assert scenes["a_sharpened"]["claimed_by"]["pid"] == holder.pid
        time.sleep(2 * 0.5)  # two looks at the claim: still held, still waiting
        assert batch.is_alive() and theirs.exists() and not (out / "a_sharpened.npz").exists()
    finally:
        holder.stdin.close()  # the holder exits without finishing a
        holder.wait(timeout=30)
    batch.join(timeout=60)
    records = result["r"].records
    assert [r["status"] for r in records] == ["done", "done"] and not any(r.get("skipped") for r in records)
    assert sorted(p.name for p in out.iterdir()) == _listing(out, ["a", "b"])  # its temporary file was stale


def test_wait_bounds_the_wait_for_a_hung_run_and_leaves_its_scene_pending(tmp_path, model):
    first, second = write_scene(tmp_path / "in" / "a.npz", seed=1), write_scene(tmp_path / "in" / "b.npz", seed=2)
    out = tmp_path / "out"
    out.mkdir()
    holder = _hold(out / "a_sharpened.npz", "hold")  # a live run that never finishes a (hung, or SIGSTOPped)
    try:
        config = _config(model, wait=1.0)
        start, outcome = time.monotonic(), {}
        batch = threading.Thread(target=lambda: outcome.update(r=run_batch([first, second], out, config)))
        batch.start()
        batch.join(timeout=60)  # without the bound it would wait for the holder forever
        assert not batch.is_alive()
        waited, result = time.monotonic() - start, outcome["r"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert 1.0 <= waited < 30
    a, b = result.records
    assert a["status"] == "pending" and a["claimed_by"]["pid"] == holder.pid and b["status"] == "done"
    scenes = {r["name"]: r for r in read_manifest(out)["scenes"]}
    assert scenes["a_sharpened"]["status"] == "pending" and read_manifest(out)["finished"] is not None
    assert not (out / "a_sharpened.npz").exists()
    with pytest.raises(OptionError, match="wait must be a number of seconds >= 0, got -1"):
        BatchConfig(mode="infer", model=model, wait=-1)


def test_cli_wait_reports_the_held_scene_and_exits_1(tmp_path, ssc_edge_command):
    model = REPO / "models" / "demo.onnx"
    if not model.is_file():
        pytest.skip("no shipped demo model")
    scenes = _scenes(tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    holder = _hold(out / f"{scenes[0]}_sharpened.npz", "hold")
    try:
        args = [*ssc_edge_command, "batch", str(tmp_path / "in"), "--out", str(out), "--model", str(model),
                "--format", "npz", "--precision", "fp32", "--wait", "1", "-q"]  # fmt: skip
        run = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert run.returncode == 1, run.stderr
    line = f"pending: {tmp_path / 'in' / scenes[0]}.npz: still held by another run (pid {holder.pid} on "
    assert line in run.stderr and "after --wait 1 s; rerun to take it over" in run.stderr
    assert run.stdout.startswith("1 done (0 from an earlier run), 0 failed in ")


def test_claims_are_exclusive_between_processes_and_removed_on_release(tmp_path):
    output = tmp_path / "x_sharpened.tif"
    claim = claim_output(claim_path(output))
    assert claim is not None and claim_holder(claim.path)["pid"] == os.getpid()
    assert claim_output(claim_path(output)) is None  # a second descriptor, even in this process, is refused
    probe = subprocess.run([sys.executable, "-c", _HOLD_SCRIPT, str(output), "kill"], capture_output=True,
                           text=True, cwd=REPO, timeout=60, check=False)  # fmt: skip
    assert probe.stdout.strip() == "busy"
    claim.release()
    assert not claim.path.exists()
    again = claim_output(claim_path(output))
    assert again is not None
    again.release()


def test_merge_keeps_final_records_and_both_runs_scenes():
    old_failed = {"name": "a", "status": "failed", "finished": "2026-01-01T10:00:00+00:00", "run": "1"}
    pending = {"name": "a", "status": "pending", "run": "2"}
    done = {"name": "a", "status": "done", "finished": "2026-01-01T11:00:00+00:00", "run": "2"}
    other = {"name": "b", "status": "done", "finished": "2026-01-01T10:30:00+00:00", "run": "3"}
    assert merge_records([old_failed, other], [pending]) == [old_failed, other]  # pending never hides a result
    assert merge_records([old_failed, other], [done]) == [done, other]  # the later result wins
    assert merge_records([done], [old_failed]) == [done]  # an older result never replaces a newer one
    assert merge_records([pending], [other]) == [pending, other]  # another run's scenes are kept, order kept
    copy = {**done, "skipped": True, "run": "2"}
    assert merge_records([done], [copy]) == [copy]  # a tie goes to the writer (the copy names the same run)


@pytest.mark.slow
def test_two_cli_runs_at_once_with_the_shipped_model(tmp_path, ssc_edge_command):
    model = REPO / "models" / "demo.onnx"
    if not model.is_file():
        pytest.skip("no shipped demo model")
    names = _scenes(tmp_path / "in", 6)
    args = [*ssc_edge_command, "batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(model),
            "--format", "npz", "--precision", "fp32", "-q"]  # fmt: skip
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outcomes = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outcomes]
    sharpened_here = 0
    for stdout, _ in outcomes:  # "6 done (K from an earlier run[, M by another run]), 0 failed"
        done, rest = stdout.split(" done (", 1)
        assert int(done) == len(names) and ", 0 failed in " in rest
        numbers = [int(part.split()[0]) for part in rest.split(")")[0].split(", ")]
        sharpened_here += len(names) - sum(numbers)
    assert sharpened_here == len(names)  # between them the two runs sharpened every scene once
    manifest = read_manifest(tmp_path / "out")
    assert len(manifest["runs"]) == 2 and manifest["summary"]["done"] == len(names)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == _listing(tmp_path / "out", names)
