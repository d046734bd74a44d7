"""Outputs that must not be written: an input, a dangling link, a folder that cannot take files; and the
temporary files of a run that is terminated (SIGTERM: removed at once) or killed (SIGKILL: removed by the next
run in the same folder).

The signal tests run the real ``ssc-edge infer`` in a subprocess on a streamed GeoTIFF scene (the output's
temporary file exists for the whole run), stop it (SIGSTOP) once that file appears and signal it stopped inside
the write.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS, GSD
from ssc_edge.demo import demo_scene
from ssc_edge.errors import OutputError
from ssc_edge.io import atomic_output, check_outputs
from ssc_edge.io.output import check_output_folder, remove_stale_files, temporary_prefix

rasterio = pytest.importorskip("rasterio")


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture()
def npz_scene(tmp_path) -> Path:
    path = tmp_path / "scene.npz"
    np.savez(path, **demo_scene(size=60).bands)
    return path


def test_output_equal_to_the_input_is_refused_even_with_force(run_cli, npz_scene):
    before = npz_scene.read_bytes()
    for output in (npz_scene, npz_scene.parent / "." / npz_scene.name):
        line = _one_error_line(run_cli("infer", npz_scene, "-o", output, "--force", "--provider", "cpu"))
        assert line == f"ssc-edge: error: {output}: output is the input {npz_scene}; writing it would destroy the input"
    assert npz_scene.read_bytes() == before


def test_fit_and_export_refuses_a_model_path_that_is_its_scene_even_with_force(run_cli, npz_scene):
    """``-o model.onnx`` where model.onnx links to the scene: refused before any training, the scene intact."""
    pytest.importorskip("tensorflow")
    link = npz_scene.with_name("model.onnx")
    link.symlink_to(npz_scene)
    before = npz_scene.read_bytes()
    line = _one_error_line(run_cli("fit-and-export", npz_scene, "-o", link, "--force", "--epochs", "1", "--quiet"))
    assert line == f"ssc-edge: error: {link}: output is the input {npz_scene}; writing it would destroy the input"
    assert npz_scene.read_bytes() == before and link.is_symlink()


def test_output_that_is_the_input_through_a_hard_link_is_refused(npz_scene):
    link = npz_scene.with_name("link.npz")
    os.link(npz_scene, link)
    with pytest.raises(OutputError, match=r"link\.npz: output is the input .*scene\.npz"):
        check_outputs([link], force=True, inputs=[None, npz_scene])
    assert check_outputs([npz_scene.with_name("other.npz")], inputs=[npz_scene])[0].name == "other.npz"


def test_dangling_symlink_output_needs_force_and_is_replaced_not_written_through(run_cli, npz_scene, tmp_path):
    target = tmp_path / "elsewhere" / "target.npz"
    target.parent.mkdir()
    link = tmp_path / "out.npz"
    link.symlink_to(target)
    line = _one_error_line(run_cli("infer", npz_scene, "-o", link, "--provider", "cpu"))
    assert line == (
        f"ssc-edge: error: {link}: output is a dangling symbolic link (to {target}); pass --force to replace the link"
    )
    assert link.is_symlink() and not target.exists()
    result = run_cli("infer", npz_scene, "-o", link, "--provider", "cpu", "--force", "--quiet")
    assert result.returncode == 0, result.stderr
    assert not link.is_symlink() and link.is_file() and not target.exists()  # the link replaced, never followed
    with np.load(link) as product:
        assert set(COARSE_BANDS) <= set(product.files)


def test_output_in_proc_is_one_line(run_cli, npz_scene):
    line = _one_error_line(run_cli("infer", npz_scene, "-o", "/proc/ssc-edge-x.tif", "--provider", "cpu"))
    assert line.startswith("ssc-edge: error: /proc/ssc-edge-x.tif: cannot write in folder /proc (")


def test_atomic_output_that_cannot_create_its_temporary_file_raises_output_error():
    with (
        pytest.raises(OutputError, match=r"^/proc/ssc-edge-y\.tif: cannot write \("),
        atomic_output(Path("/proc/ssc-edge-y.tif")),
    ):
        pass  # pragma: no cover (never entered)


def test_batch_into_an_outdir_that_takes_no_files_is_one_line(run_cli, npz_scene):
    from ssc_edge.runtime.infer import default_model_path

    line = _one_error_line(run_cli("batch", npz_scene, "-o", "/proc", "--model", default_model_path()))
    assert line.startswith("ssc-edge: error: /proc: cannot write in output folder (")
    with pytest.raises(OutputError, match=r"^/sys: cannot write in output folder \("):
        check_output_folder(Path("/sys"))


# -- temporary files of terminated and killed runs ------------------------------------------------------------


def _write_band_folder(folder: Path, size: int) -> Path:
    from rasterio.transform import from_origin

    folder.mkdir()
    rng = np.random.default_rng(0)
    for band in FINE_BANDS + COARSE_BANDS:
        side = size * 10 // GSD[band]
        dn = rng.integers(500, 3000, (side, side)).astype(np.uint16)
        profile = dict(driver="GTiff", width=side, height=side, count=1, dtype="uint16", crs="EPSG:32632",
                       transform=from_origin(600000, 5100000, GSD[band], GSD[band]))  # fmt: skip
        with rasterio.open(folder / f"T32TQM_{band}.tif", "w", **profile) as dataset:
            dataset.write(dn, 1)
    return folder


@pytest.fixture(scope="module")
def slow_scene(tmp_path_factory) -> Path:
    """A 600 x 600 px band folder: a few seconds of streamed infer with 48-px tiles on one thread."""
    return _write_band_folder(tmp_path_factory.mktemp("scene") / "scene", 600)


def _start_infer(ssc_edge_command, scene: Path, output: Path) -> subprocess.Popen:
    args = ["infer", scene, "-o", output, "--provider", "cpu", "--precision", "fp32", "--tile", "48", "--threads",
            "1", "--no-quality", "--quiet"]  # fmt: skip
    return subprocess.Popen([*ssc_edge_command, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _temporaries(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f".{output.name}.*"))


def _wait_until_stopped(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """Return once ``process`` is in the stopped state ``T`` (Linux ``/proc/PID/stat``)."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{process.pid}/stat")
    while time.monotonic() < deadline:
        if stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t"):
            return
        time.sleep(0.005)


def _stop_while_writing(process: subprocess.Popen, output: Path, timeout: float = 120) -> Path:
    """Stop (SIGSTOP) ``process`` once its output's temporary file exists, and return that file.

    Checked after the stop: the file is still there and the process has not ended, so the run is stopped inside
    the write, whatever the machine's speed (a signal sent then arrives mid-write, no race with the rename).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _temporaries(output):
            process.send_signal(signal.SIGSTOP)
            _wait_until_stopped(process)  # a signal is delivered asynchronously: list the files once it has landed
            found = _temporaries(output)
            assert process.poll() is None, "the run ended before it could be stopped inside its write"
            if found:
                return found[0]
            process.send_signal(signal.SIGCONT)  # between two temporary files (scratch, then product): go on
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.kill()
    pytest.fail("infer wrote no temporary file")


@pytest.mark.slow
def test_sigterm_removes_the_temporary_file_and_exits_143(ssc_edge_command, slow_scene, tmp_path):
    output = tmp_path / "out.tif"
    process = _start_infer(ssc_edge_command, slow_scene, output)
    temporary = _stop_while_writing(process, output)
    assert temporary.name.startswith(temporary_prefix(output, pid=process.pid))  # named with its owner's pid
    process.send_signal(signal.SIGTERM)  # delivered when it continues, inside the write
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    last = stderr.strip().splitlines()[-1]
    assert last == "ssc-edge: terminated (SIGTERM); nothing half-written is left under an output's name"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_temporary_file_of_a_killed_run_is_removed_by_the_next_run(ssc_edge_command, slow_scene, tmp_path):
    output = tmp_path / "out.tif"
    process = _start_infer(ssc_edge_command, slow_scene, output)
    _stop_while_writing(process, output)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    stale = _temporaries(output)  # the output's temporary file, and the COG step's plain GeoTIFF
    assert process.returncode == -signal.SIGKILL and stale and not output.exists()
    assert all(path.name.startswith(temporary_prefix(output, pid=process.pid)) for path in stale)
    # beside it: a live process's temporary file (this test's pid), another output's, and a file not ours
    live = tmp_path / f"{temporary_prefix(output)}abcd1234.tif"
    other = tmp_path / f"{temporary_prefix(tmp_path / 'other.tif', pid=process.pid)}abcd1234.tif"
    foreign = tmp_path / f".out.tif.{process.pid}.tif"
    for path in (live, other, foreign):
        path.write_bytes(b"x")
    rerun = _start_infer(ssc_edge_command, slow_scene, output)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert output.is_file() and not any(path.exists() for path in stale)
    assert _temporaries(output) == sorted([live, foreign])
    assert not other.exists()  # a dead process's temporary file of another output in the folder: removed too
    with rasterio.open(output) as dataset:
        assert dataset.count == len(COARSE_BANDS) and dataset.shape == (600, 600)


def test_remove_stale_temporaries_keeps_live_and_foreign_files(tmp_path):
    output = tmp_path / "r.npz"
    probe = subprocess.Popen(["sleep", "0"])  # a pid that has just ended
    probe.wait()
    stale = tmp_path / f"{temporary_prefix(output, pid=probe.pid)}zz99zz99.npz"
    mine = tmp_path / f"{temporary_prefix(output)}zz99zz99.npz"
    unrelated = tmp_path / "r.npz.keep"
    for path in (stale, mine, unrelated):
        path.write_bytes(b"x")
    assert remove_stale_files(tmp_path) == [stale]
    assert not stale.exists() and mine.exists() and unrelated.exists()
    with atomic_output(output) as tmp:
        assert tmp.name.startswith(temporary_prefix(output)) and tmp.suffix == ".npz"
        tmp.write_bytes(b"done")
    assert output.read_bytes() == b"done" and mine.exists()


def _pending(pid: int) -> int:
    """The signals pending for process ``pid`` (Linux ``/proc``: the shared mask, bit n - 1 for signal n)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^ShdPnd:\s*([0-9a-f]+)$", status, re.MULTILINE)[1], 16)


@pytest.mark.slow
def test_sigterm_stops_a_batch_and_its_worker_and_the_rerun_finishes_clean(ssc_edge_command, slow_scene, tmp_path):
    """The batch stops within seconds (its worker terminated, not awaited); the rerun removes the worker's
    temporary files and writes the product."""
    from ssc_edge.runtime.infer import default_model_path

    out = tmp_path / "out"
    args = [*ssc_edge_command, "batch", str(slow_scene), "-o", str(out), "--model", str(default_model_path()),
            "--tile", "48"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = out / "scene_sharpened.tif"
    deadline = time.monotonic() + 120
    while not out.is_dir() or not _temporaries(output):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    worker = int(re.search(r"\.ssc-edge-[A-Za-z0-9]+-(\d+)\.", _temporaries(output)[0].name)[1])  # its pid
    os.kill(worker, signal.SIGSTOP)  # stopped inside its write: no race between the signal and the rename
    assert _temporaries(output) and not output.exists(), "the worker finished before it could be stopped"
    process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    while not _pending(worker) & (1 << (signal.SIGTERM - 1)):  # the batch has terminated its stopped worker
        assert time.monotonic() < stopped + 15 and process.poll() is None, process.communicate()
        time.sleep(0.01)
    os.kill(worker, signal.SIGCONT)  # the pending SIGTERM ends it before it runs another instruction
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and time.monotonic() - stopped < 15, stderr
    assert stderr.strip().splitlines()[-1].startswith("ssc-edge: terminated (SIGTERM)")
    assert not output.exists()
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert output.is_file() and _temporaries(output) == []
