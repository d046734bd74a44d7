"""The Ray engine on a local Ray of 2 CPUs: same outputs as the local engine, split scenes, killed workers.

One module-scoped local Ray serves every test (the engine uses the Ray runtime the process already
runs). Without Ray these tests skip, except in CI (``CI`` set), which installs the ``distributed``
extra and must run them. The missing-Ray error is tested without Ray, in a child process that hides it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS
from ssc_edge.batch import BatchConfig, read_manifest, run_batch
from ssc_edge.demo import demo_scene
from ssc_edge.runtime import Sharpener

from ..runtime._models import write_model
from .test_batch import three_scenes, write_scene

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "demo.onnx"


def _require_ray():
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs the 'distributed' extra, but ray is not importable")
        pytest.skip("ray is not installed (engine ray needs the 'distributed' extra: pip install -e '.[distributed]')")
    import ray

    return ray


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs for the whole module."""
    ray = _require_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("model") / "small.onnx")


def _image(path: Path) -> np.ndarray:
    """A written .npz result as (H, W, 6), ``COARSE_BANDS`` order."""
    with np.load(path) as saved:
        return np.stack([saved[band] for band in COARSE_BANDS], axis=-1)


@pytest.mark.slow
def test_infer_on_ray_equals_local_then_resumes(tmp_path, ray_cluster, model):
    three_scenes(tmp_path / "in")  # a, b (corrupt), c
    write_scene(tmp_path / "in" / "d.npz", size=64, seed=4)
    options = {"mode": "infer", "model": model, "output_format": "npz", "threads": 1}
    local = run_batch([tmp_path / "in"], tmp_path / "local", BatchConfig(**options, in_process=True))
    calls = []
    result = run_batch([tmp_path / "in"], tmp_path / "ray", BatchConfig(**options, workers=2), engine="ray",
                       progress=lambda done, total, message="": calls.append((done, total, message)))  # fmt: skip
    assert [r["status"] for r in result.records] == [r["status"] for r in local.records] == [
        "done", "failed", "done", "done"
    ]  # fmt: skip
    assert result.records[1]["error"] == local.records[1]["error"]
    assert result.records[1]["error"].startswith("SceneReadError") and "b.npz" in result.records[1]["error"]
    for name in ("a", "c", "d"):
        output = f"{name}_sharpened.npz"
        assert np.array_equal(_image(tmp_path / "ray" / output), _image(tmp_path / "local" / output)), name
    assert [c[:2] for c in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert "done" in calls[-1][2] and "1 failed" in calls[-1][2]

    manifest = read_manifest(tmp_path / "ray")
    assert manifest["engine"] == "ray" and manifest["summary"] == {"done": 3, "failed": 1, "pending": 0, "skipped": 0}
    info = manifest["engine_info"]
    assert info["started_here"] is False and info["cpus_per_worker"] == 1 and info["gpus_per_worker"] == 0
    done = [s for s in manifest["scenes"] if s["status"] == "done"]
    assert set(local.records[0]) - {"skipped"} <= set(done[0])  # every key of the local engine's record
    assert all(s["node"] and s["worker_restarted"] is False for s in done)

    again = run_batch([tmp_path / "in"], tmp_path / "ray", BatchConfig(**options, workers=2), engine="ray")
    assert [r.get("skipped", False) for r in again.records] == [True, False, True, True]
    assert again.count("failed") == 1


@pytest.mark.slow
def test_split_scene_on_ray_equals_one_process_sharpen(tmp_path, ray_cluster, model):
    scene_path = write_scene(tmp_path / "big.npz", size=128, seed=5)
    config = BatchConfig(mode="infer", model=model, output_format="npz", workers=2, tile=32, split=3)
    result = run_batch([scene_path], tmp_path / "out", config, engine="ray")
    record = result.records[0]
    assert record["status"] == "done", record.get("error")
    assert record["row_bands"] == 3
    scene = demo_scene(size=128, seed=5)
    whole = Sharpener(model, provider="cpu", tile=32).sharpen(scene)
    assert np.array_equal(_image(tmp_path / "out" / "big_sharpened.npz"), whole)


def _kill_a_worker_inside(method: str, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL a Ray actor process that is, for certain, inside ``method`` (title ``ray::SceneWorker.METHOD``).

    Every 2 ms the known actor processes are stopped (SIGSTOP), their titles read while they cannot move, and one
    inside ``method`` is killed there; the others continue. A method therefore runs unobserved for at most one
    process-table scan (tens of ms) before it is sampled frozen, far less than its own CPU time (a demo-model
    scene or row band: hundreds of ms), and the kill lands where the frozen title says, not after a sleep.
    """
    import psutil

    def title(proc: psutil.Process) -> str:
        try:
            return (proc.cmdline() or [""])[0]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return ""

    known: dict[int, psutil.Process] = {}
    scan = 0.0
    while not stop.is_set() and not killed:
        if time.monotonic() - scan > 0.05:  # new actors (and the first ones) join the sampled set
            for proc in psutil.process_iter():
                if title(proc).startswith("ray::SceneWorker"):
                    known.setdefault(proc.pid, proc)
            scan = time.monotonic()
        frozen = []
        for proc in known.values():
            try:
                proc.suspend()
                frozen.append(proc)
            except psutil.NoSuchProcess:
                pass
        try:
            for proc in frozen:
                if title(proc).startswith(f"ray::SceneWorker.{method}"):
                    os.kill(proc.pid, signal.SIGKILL)
                    killed.append(proc.pid)
                    break
        finally:
            for proc in frozen:
                if proc.pid not in killed:
                    try:
                        proc.resume()
                    except psutil.NoSuchProcess:
                        pass
        time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "split"), [("process", 1), ("sharpen_row_band", 2)])
def test_killed_worker_is_restarted_and_its_work_retried(tmp_path, ray_cluster, method, split):
    """A real SIGKILL of an actor in the middle of a scene (or row band): Ray restarts it and runs it again."""
    pytest.importorskip("psutil")
    for seed in range(2):
        write_scene(tmp_path / "in" / f"s{seed}.npz", size=256, seed=seed)  # ~0.5 s each with the demo model
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_a_worker_inside, args=(method, stop, killed), daemon=True)
    killer.start()
    config = BatchConfig(mode="infer", model=DEMO_MODEL, output_format="npz", workers=2, threads=1, tile=96,
                         split=split)  # fmt: skip
    try:
        result = run_batch([tmp_path / "in"], tmp_path / "out", config, engine="ray")
    finally:
        stop.set()
        killer.join()
    assert killed, f"no actor was seen running {method}"
    assert [r["status"] for r in result.records] == ["done", "done"], [r.get("error") for r in result.records]
    if split == 1:
        restarted = [r for r in result.records if r["worker_restarted"]]
        assert len(restarted) == 1 and restarted[0]["pid"] != killed[0]
    else:
        assert [r["row_bands"] for r in result.records] == [2, 2]
    local = BatchConfig(mode="infer", model=DEMO_MODEL, output_format="npz", threads=1, tile=96, in_process=True)
    assert run_batch([tmp_path / "in"], tmp_path / "local", local).count("done") == 2
    for name in ("s0", "s1"):
        assert np.array_equal(_image(tmp_path / "out" / f"{name}_sharpened.npz"),
                              _image(tmp_path / "local" / f"{name}_sharpened.npz")), name  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")) == []  # no leftovers


def test_missing_ray_is_one_line_and_exit_2(tmp_path):
    """The CLI in a child process where ``import ray`` fails."""
    scene = write_scene(tmp_path / "a.npz")
    code = "import sys; sys.modules['ray'] = None; from ssc_edge.cli import main; main(sys.argv[1:])"
    args = ["batch", str(scene), "--out", str(tmp_path / "out"), "--model", str(DEMO_MODEL), "--engine", "ray"]
    completed = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                               check=False)  # fmt: skip
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr == (
        "ssc-edge: error: engine ray needs the 'distributed' extra: pip install 'ssc-edge[distributed]'\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_starts_and_stops_its_own_local_ray(tmp_path, run_cli, model):
    _require_ray()
    for seed in range(2):
        write_scene(tmp_path / "in" / f"s{seed}.npz", size=64, seed=seed)
    completed = run_cli("batch", tmp_path / "in", "--out", tmp_path / "out", "--model", model, "--engine", "ray",
                        "--workers", 2, "--split", 2, "--format", "npz", "-q", timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("2 done (0 from an earlier run), 0 failed in ")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["engine"] == "ray" and manifest["config"]["split"] == 2
    assert manifest["engine_info"]["started_here"] is True and manifest["engine_info"]["cpus_per_worker"] >= 1


@pytest.mark.slow
def test_fit_and_infer_as_ray_tasks(tmp_path, ray_cluster):
    pytest.importorskip("tensorflow")
    scene = write_scene(tmp_path / "a.npz", size=64)  # the fit evaluation trains 2 scales down: 64 px at least
    tiny = {"batch_size": 16, "stage_iterations": 0, "model": {"blocks": 1, "width": 8, "skip_width": 4}}
    config = BatchConfig(mode="fit-and-infer", epochs=2, output_format="npz", fit_options=tiny)
    record = run_batch([scene], tmp_path / "out", config, engine="ray").records[0]
    assert record["status"] == "done", record.get("error")
    assert Path(record["model"]) == tmp_path / "out" / "models" / "a_sharpened.onnx"
    assert {"fit", "sharpen"} <= set(record["seconds"]) and record["node"]


@pytest.mark.parametrize(
    ("cluster", "workers", "expected"),
    [
        ({"CPU": 2.0}, 2, (1, 0.0)),
        ({"CPU": 2.0}, 1, (2, 0.0)),
        ({"CPU": 16.0, "GPU": 1.0}, 2, (8, 0.5)),  # fewer GPUs than workers: an equal share each
        ({"CPU": 16.0, "GPU": 4.0}, 2, (8, 1.0)),  # one GPU per actor
        ({"CPU": 2.0}, 4, (1, 0.0)),  # more workers than CPUs: 1 each, a warning, some wait
    ],
)
def test_worker_resources_from_the_cluster(cluster, workers, expected):
    """CPUs and GPUs asked for each actor, from what Ray reports (a stand-in for ray's two calls)."""
    from types import SimpleNamespace

    from ssc_edge.batch.ray_engine import _resources

    fake = SimpleNamespace(cluster_resources=lambda: cluster, nodes=lambda: [{"Alive": True, "Resources": cluster}])
    assert _resources(fake, workers) == expected


@pytest.mark.slow
def test_ray_workers_take_the_same_claims(tmp_path, ray_cluster, model):
    """A scene another process holds is skipped by the Ray actors, waited for, and taken over when it dies."""
    from .test_concurrency import _hold, _listing

    write_scene(tmp_path / "in" / "a.npz", seed=1)
    write_scene(tmp_path / "in" / "b.npz", seed=2)
    out = tmp_path / "out"
    out.mkdir()
    holder = _hold(out / "a_sharpened.npz", "hold")
    seen = []

    def release_once_waited_for() -> None:
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and not seen:
                scenes = {s["name"]: s for s in (read_manifest(out) or {}).get("scenes", [])}
                if "claimed_by" in scenes.get("a_sharpened", {}):
                    seen.append(scenes["a_sharpened"]["claimed_by"]["pid"])
                time.sleep(0.05)
        finally:
            holder.stdin.close()  # the holder exits without finishing a

    watcher = threading.Thread(target=release_once_waited_for, daemon=True)
    watcher.start()
    config = BatchConfig(mode="infer", model=model, output_format="npz", workers=2, threads=1)
    result = run_batch([tmp_path / "in"], out, config, engine="ray")
    watcher.join()
    holder.wait(timeout=30)
    assert seen == [holder.pid]  # the manifest named the holder while the run waited
    assert [r["status"] for r in result.records] == ["done", "done"]
    assert all(r["node"] and not r.get("skipped") for r in result.records)  # both sharpened by Ray actors
    assert sorted(p.name for p in out.iterdir()) == _listing(out, ["a", "b"])
