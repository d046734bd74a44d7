"""The one output guard (:mod:`ssc_edge.io.output`) as ``infer``, ``batch`` and ``fit-and-export`` meet it.

Each case is a command an attacker or a careless user could run: a claim file planted as a link (symbolic,
hard) or a FIFO beside an output, a second writer of one output, the temporary files of a killed run of another
output, an output name that is not UTF-8, a batch whose output is one of its inputs, the warning hint with a
scene path a shell would split. Real commands (``ssc-edge ...`` in a subprocess) with the shipped demo model,
or the library with a small real ONNX model.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.demo import demo_scene
from ssc_edge.errors import OutputError
from ssc_edge.io.output import (
    check_outputs,
    claim_output,
    claim_path,
    output_guard,
    remove_stale_files,
    temporary_prefix,
)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0]


def _scene(path: Path, *, size: int = 40, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{b: demo_scene(size=size, seed=seed).bands[b] for b in FINE_BANDS + COARSE_BANDS})
    return path


def _dead_pid() -> int:
    probe = subprocess.Popen(["true"])
    probe.wait()
    return probe.pid


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A small real ssc-edge ONNX model (onnxruntime runs it)."""
    from tests.runtime._models import write_model

    return write_model(tmp_path_factory.mktemp("model") / "small.onnx", blocks=1, width=4)


@pytest.fixture()
def victim(tmp_path) -> Path:
    """A file outside the output folder that a planted link points at."""
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_text("keep me\n")
    return path


# -- claims: never through a link ---------------------------------------------------------------------------


def test_infer_never_writes_through_a_claim_planted_as_a_symbolic_link(run_cli, tmp_path, victim):
    scene, out = _scene(tmp_path / "scene.npz"), tmp_path / "out"
    out.mkdir()
    planted = out / ".claim-x.npz"
    planted.symlink_to(victim)
    line = _one_error_line(run_cli("infer", scene, "-o", out / "x.npz", "--provider", "cpu", "--force"))
    assert line == f"ssc-edge: error: {planted}: is a symbolic link, not a claim file; remove it"
    assert victim.read_text() == "keep me\n" and sorted(p.name for p in out.iterdir()) == [".claim-x.npz"]


def test_planted_hard_links_fifos_and_dangling_links_are_refused_and_left_alone(tmp_path, victim):
    out = tmp_path / "out"
    out.mkdir()
    os.link(victim, out / ".claim-a.tif")
    os.mkfifo(out / ".claim-b.tif")  # would block a reader forever
    (out / ".claim-c.tif").symlink_to(tmp_path / "outside" / "created-through-the-link")
    expected = {
        "a": "is a file with several names (a hard link), not a claim file; remove it",
        "b": "is not a regular file, not a claim file; remove it",
        "c": "is a symbolic link, not a claim file; remove it",
    }
    for name, why in expected.items():
        with (
            pytest.raises(OutputError, match=f"^{re.escape(str(out))}/\\.claim-{name}\\.tif: {re.escape(why)}$"),
            output_guard([out / f"{name}.tif"]),
        ):
            pass  # pragma: no cover (never entered)
    assert victim.read_text() == "keep me\n" and os.stat(victim).st_nlink == 2
    assert not (tmp_path / "outside" / "created-through-the-link").exists()
    assert sorted(p.name for p in out.iterdir()) == [".claim-a.tif", ".claim-b.tif", ".claim-c.tif"]
    remove_stale_files(out)  # the sweep of killed runs' files leaves them too
    assert sorted(p.name for p in out.iterdir()) == [".claim-a.tif", ".claim-b.tif", ".claim-c.tif"]


def test_batch_scene_with_a_planted_claim_link_fails_cleanly_and_the_others_run(tmp_path, victim, small_model):
    from ssc_edge.batch import BatchConfig, run_batch

    scenes = [_scene(tmp_path / "in" / f"{name}.npz", size=32, seed=k) for k, name in enumerate("ab")]
    out = tmp_path / "out"
    out.mkdir()
    planted = out / ".claim-a_sharpened.npz"
    planted.symlink_to(victim)
    config = BatchConfig(mode="infer", model=small_model, output_format="npz", in_process=True, precision="fp32")
    a, b = run_batch(scenes, out, config).records
    assert a["status"] == "failed"
    assert a["error"] == f"cannot claim the scene: {planted}: is a symbolic link, not a claim file; remove it"
    assert b["status"] == "done" and (out / "b_sharpened.npz").is_file() and not (out / "a_sharpened.npz").exists()
    assert victim.read_text() == "keep me\n" and planted.is_symlink()


# -- one writer per output ----------------------------------------------------------------------------------


def test_a_second_writer_of_one_output_is_refused_and_writes_nothing(run_cli, tmp_path):
    """What two ``infer`` runs to one output do: the claim of the first (held here, as a running ``infer`` holds
    it until its rename) refuses the second, even with ``--force``; once released, a run writes it."""
    scene, output = _scene(tmp_path / "scene.npz"), tmp_path / "x.npz"
    claim = claim_output(claim_path(output))
    try:
        line = _one_error_line(run_cli("infer", scene, "-o", output, "--provider", "cpu", "--force"))
    finally:
        claim.release()
    assert line == (f"ssc-edge: error: {output}: another ssc-edge run (pid {os.getpid()} on {socket.gethostname()}) "
                    "is writing it; wait for it to finish or write elsewhere")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.npz"]
    done = run_cli("infer", scene, "-o", output, "--provider", "cpu", "--quiet")
    assert done.returncode == 0 and done.stdout.startswith(f"wrote {output} "), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.npz", "x.npz"]  # the claim file removed


def test_two_infer_runs_at_once_to_one_output_write_it_once(ssc_edge_command, tmp_path):
    """Started together on a streamed scene (the output's temporary file lives for the whole run; today both print
    ``wrote``): whichever comes second is refused (the claim held, or the output there by then)."""
    pytest.importorskip("rasterio")
    from tests.io.test_output_safety import _write_band_folder

    scene, output = _write_band_folder(tmp_path / "scene", 200), tmp_path / "x.tif"
    args = [*ssc_edge_command, "infer", str(scene), "-o", str(output), "--provider", "cpu", "--quiet"]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outcomes = sorted((run.wait(timeout=300), *run.communicate()) for run in runs)
    (ok, wrote, _), (refused, nothing, error) = outcomes
    assert (ok, refused) == (0, 2) and wrote.startswith(f"wrote {output} ") and nothing == ""
    assert error.startswith(f"ssc-edge: error: {output}: ") and len(error.strip().splitlines()) == 1
    assert "is writing it" in error or "output exists" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene", "x.tif"]


def test_a_writer_that_finished_while_the_second_waited_for_its_claim_is_not_overwritten(tmp_path):
    """The checks run again once the claims are held: an output that appeared meanwhile needs ``force``."""
    output = tmp_path / "x.npz"
    check_outputs([output])  # the second writer's first check: nothing there yet
    output.write_bytes(b"the first writer's product")
    with pytest.raises(OutputError, match=r"x\.npz: output exists; pass --force"), output_guard([output]):
        pass  # pragma: no cover (never entered)
    assert output.read_bytes() == b"the first writer's product" and not claim_path(output).exists()


def test_fit_and_export_claims_its_outputs_before_fitting(tmp_path):
    pytest.importorskip("tensorflow")
    from ssc_edge.train import fit_and_export

    output = tmp_path / "m.onnx"
    claim = claim_output(claim_path(output.with_suffix(".json")))  # another run is writing one of its files
    try:
        with pytest.raises(OutputError, match=r"m\.json: another ssc-edge run \(pid \d+ on .+\) is writing it"):
            fit_and_export(_scene(tmp_path / "s.npz", size=48), output)
    finally:
        claim.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


# -- what killed runs leave ---------------------------------------------------------------------------------


def test_any_later_run_in_the_folder_removes_what_killed_runs_left_there(run_cli, tmp_path):
    """Temporary files of other outputs of this folder whose process is dead, and unheld claim files, go; a live
    process's file, another host's and files not ours stay."""
    scene, out = _scene(tmp_path / "in" / "scene.npz"), tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    stale = [out / f"{temporary_prefix(out / 'other.tif', pid=dead)}abcd1234.tif",
             out / f"{temporary_prefix(out / 'other.tif', pid=dead)}abcd1234.plain.tif.ovr",
             out / ".claim-other.tif"]  # fmt: skip
    kept = [out / f"{temporary_prefix(out / 'other.tif')}zz99zz99.tif",  # this (live) process's
            out / f".other.tif.ssc-edge-anotherhost-{dead}.abcd1234.tif",  # another host's: its pid says nothing here
            out / f".other.tif.{dead}.tif", out / "other.tif"]  # fmt: skip
    for path in stale + kept:
        path.write_bytes(b"x")
    result = run_cli("infer", scene, "-o", out / "x.npz", "--provider", "cpu", "--quiet")
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in stale)
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in kept] + ["x.npz"])


# -- names --------------------------------------------------------------------------------------------------


def test_an_output_name_that_is_not_utf8_is_one_clean_line(ssc_edge_command, tmp_path):
    scene = _scene(tmp_path / "scene.npz")
    output = os.fsencode(tmp_path) + b"/caf\xe9.npz"  # Latin-1, not UTF-8
    args = [*map(os.fsencode, ssc_edge_command), b"infer", os.fsencode(scene), b"-o", output, b"--provider", b"cpu"]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict UTF-8 output, as many images set it
    result = subprocess.run(args, capture_output=True, timeout=600, check=False, env=env)
    lines = result.stderr.decode("utf-8").strip().splitlines()
    assert result.returncode == 2 and lines == [
        f"ssc-edge: error: {tmp_path}/caf\\xe9.npz: output name is not valid UTF-8; give it a UTF-8 name"
    ], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.npz"]
    from ssc_edge.batch import plan_jobs  # the batch's OUTDIR, printed on stdout at its end: refused before any work

    with pytest.raises(OutputError, match=r"/out\\xff: output name is not valid UTF-8; give it a UTF-8 name$"):
        plan_jobs([(scene, None)], Path(os.fsdecode(os.fsencode(tmp_path) + b"/out\xff")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.npz"]


def test_the_fit_hint_quotes_the_scene_for_the_shell():
    from ssc_edge.runtime.infer import scene_mismatch

    scene = "/data/my scene; rm -rf ~ $(reboot).SAFE"
    contract = SimpleNamespace(scene_sha256="ab" * 32, scene_name="T31TDH")
    warning = scene_mismatch(contract, SimpleNamespace(identity="cd" * 32, source=scene), model="m.onnx")
    command = warning.split("(fit one for this scene: ", 1)[1].removesuffix(")")
    assert shlex.split(command) == ["ssc-edge", "fit-and-export", scene, "-o", "MODEL.onnx"]


# -- no output is an input ----------------------------------------------------------------------------------


def test_batch_into_the_scene_folder_never_overwrites_a_scene(run_cli, tmp_path):
    """``batch DIR -o DIR``, DIR holding a.npz and a scene named a_sharpened.npz: a's output would be that scene.
    Refused before anything runs: one line, exit 2, nothing written."""
    from ssc_edge.runtime.infer import default_model_path

    folder = tmp_path / "dir"
    first, second = _scene(folder / "a.npz", seed=1), _scene(folder / "a_sharpened.npz", seed=2)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    line = _one_error_line(run_cli("batch", folder, "-o", folder, "--model", default_model_path(), "--format", "npz"))
    assert line == (f"ssc-edge: error: {second}: the output of {first} would overwrite the input {second}; refusing "
                    "(write to another OUTDIR, or name its output in a scene list)")  # fmt: skip
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_batch_into_the_scene_folder_reruns_over_its_own_products(tmp_path, small_model):
    """The products of an earlier ``batch DIR -o DIR`` are recognised by their reports, not taken for scenes."""
    from ssc_edge.batch import BatchConfig, run_batch

    folder = tmp_path / "dir"
    _scene(folder / "a.npz", size=32)
    config = BatchConfig(mode="infer", model=small_model, output_format="npz", in_process=True, precision="fp32")
    first = run_batch([folder], folder, config)
    assert [r["status"] for r in first.records] == ["done"]
    again = run_batch([folder], folder, config)
    assert [(r["name"], r["status"], r.get("skipped")) for r in again.records] == [("a_sharpened", "done", True)]


def test_batch_output_that_is_the_model_is_refused(tmp_path, small_model):
    from ssc_edge.batch import BatchConfig, run_batch

    scene = _scene(tmp_path / "a.npz", size=32)
    model = tmp_path / "a_sharpened.npz"  # a model file named as a's output
    model.write_bytes(small_model.read_bytes())
    config = BatchConfig(mode="infer", model=model, output_format="npz", in_process=True)
    with pytest.raises(OutputError, match=r"a_sharpened\.npz: the output of .*a\.npz would overwrite the input"):
        run_batch([scene], tmp_path, config)
    assert model.read_bytes() == small_model.read_bytes()


def test_bench_and_evaluate_never_write_over_their_inputs(run_cli, tmp_path, small_model):
    model = tmp_path / "m.onnx"
    model.write_bytes(small_model.read_bytes())
    line = _one_error_line(run_cli("bench", model, "--json", model, "--force"))
    assert line == f"ssc-edge: error: {model}: output is the input {model}; writing it would destroy the input"
    scene = _scene(tmp_path / "scene.npz")
    line = _one_error_line(run_cli("evaluate", scene, "--scene", scene, "--json", scene, "--force"))
    assert line == f"ssc-edge: error: {scene}: output is the input {scene}; writing it would destroy the input"
    assert model.read_bytes() == small_model.read_bytes() and sorted(p.name for p in tmp_path.iterdir()) == [
        "m.onnx",
        "scene.npz",
    ]


def test_optimize_never_writes_over_its_fp32_parent(run_cli, tmp_path, small_model):
    model = tmp_path / "m.onnx"
    model.write_bytes(small_model.read_bytes())
    line = _one_error_line(run_cli("optimize", model, "--precision", "fp16", "-o", model, "--force"))
    assert line == f"ssc-edge: error: {model}: output is the input {model}; writing it would destroy the input"
    assert model.read_bytes() == small_model.read_bytes() and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_infer_never_writes_into_its_band_folder(run_cli, tmp_path):
    """The scene is a folder: an output inside it (here one of its band files) would change the input."""
    pytest.importorskip("rasterio")
    from tests.io.test_output_safety import _write_band_folder

    scene = _write_band_folder(tmp_path / "scene", 40)
    before = {p.name: p.read_bytes() for p in scene.iterdir()}
    band = scene / "T32TQM_B05.tif"
    line = _one_error_line(run_cli("infer", scene, "-o", band, "--provider", "cpu", "--force"))
    assert line == (
        f"ssc-edge: error: {band}: output is inside the input folder {scene}; writing it would change the input"
    )
    assert {p.name: p.read_bytes() for p in scene.iterdir()} == before
    from ssc_edge.batch import plan_jobs  # batch: an OUTDIR inside a scene folder is refused the same way

    with pytest.raises(OutputError, match=r"scene_sharpened\.tif: the output of .*/scene would be written inside the"):
        plan_jobs([(scene, None)], scene / "out")


def test_a_claim_file_with_hostile_content_is_one_line(tmp_path):
    """What a claim file says is only read for the message, within 4 KiB and 32 levels of JSON."""
    output = tmp_path / "x.tif"
    claim = claim_output(claim_path(output), write_holder=False)
    try:
        claim_path(output).write_text("[" * 4000 + "]" * 4000)  # a RecursionError in json.loads
        with pytest.raises(OutputError, match=r"x\.tif: another ssc-edge run \(pid \? on \?\) is writing it"):
            with output_guard([output]):
                pass  # pragma: no cover (never entered)
    finally:
        claim.release()
    assert list(tmp_path.iterdir()) == []
