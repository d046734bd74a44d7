"""The batch manifest never loses records silently, and JSON is read with limits.

A damaged ``batch.json`` (truncated, hand-edited, wrong types, nested too deep, not UTF-8, a link) is kept aside
byte for byte as ``batch.json.damaged-TIMESTAMP`` with one warning line, and the run goes on with a fresh
manifest; ``--wait`` bounds the wait for the manifest's lock as it bounds the wait for a scene.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.batch import MANIFEST_NAME, BatchConfig, read_manifest, run_batch
from ssc_edge.batch.manifest import collect_scenes, read_json, update_manifest
from ssc_edge.contract import MAX_JSON_DEPTH
from ssc_edge.demo import demo_scene
from ssc_edge.errors import OptionError, OutputError

REPO = Path(__file__).resolve().parents[2]

_RECORD = {"name": "new_sharpened", "status": "done", "finished": "2026-12-07T10:00:00+00:00"}
_FIELDS = {"run": "host:1:2026-12-07T10:00:00+00:00", "engine": "local"}

DAMAGED = {
    "wrong type": (b'{"scenes": 5}', "'scenes' is a int, not a list"),
    "truncated": (b'{"scenes": [{"name": "a_sharpened", "status": "done"}, {"na', "Unterminated string"),
    "a list": (b"[1, 2]", "a JSON list, not an object"),
    "record without a name": (b'{"scenes": [{"status": "done"}]}', "scene record 1 has no name"),
    "runs not an object": (b'{"scenes": [], "runs": [1]}', "'runs' is a list, not an object"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, f"nests JSON 100000 levels deep, more than {MAX_JSON_DEPTH}"),
    "not UTF-8": (b'{"scenes": [{"name": "caf\xe9"}]}', "not UTF-8 text"),
}


def _asides(out: Path) -> list[Path]:
    return sorted(out.glob(f"{MANIFEST_NAME}.damaged-*"))


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_manifest_is_kept_aside_with_one_warning_and_a_fresh_one_written(tmp_path, caplog, case):
    content, why = DAMAGED[case]
    manifest = tmp_path / MANIFEST_NAME
    manifest.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="ssc_edge"):
        assert update_manifest(tmp_path, _FIELDS, [_RECORD]) == manifest
    (aside,) = _asides(tmp_path)
    assert aside.read_bytes() == content  # every byte kept, for a person to repair
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"warning: {manifest}: the batch manifest ") and why in warning
    assert warning.endswith(f"; kept as {aside.name}, and a fresh manifest started")
    fresh = read_manifest(tmp_path)
    assert fresh["scenes"] == [_RECORD] and fresh["summary"]["done"] == 1
    update_manifest(tmp_path, _FIELDS, [{**_RECORD, "name": "second"}])  # the fresh one is merged from now on
    assert [r["name"] for r in read_manifest(tmp_path)["scenes"]] == ["new_sharpened", "second"]
    assert _asides(tmp_path) == [aside]


def test_a_manifest_that_is_a_link_or_a_fifo_is_kept_aside_never_followed(tmp_path):
    import os

    victim = tmp_path / "victim.json"
    victim.write_text('{"scenes": []}')
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).symlink_to(victim)
    update_manifest(out, _FIELDS, [_RECORD])
    assert victim.read_text() == '{"scenes": []}' and _asides(out)[0].is_symlink()
    assert read_manifest(out)["scenes"] == [_RECORD]
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / MANIFEST_NAME)  # reading it would block forever
    update_manifest(fifo, _FIELDS, [_RECORD])
    assert read_manifest(fifo)["scenes"] == [_RECORD] and len(_asides(fifo)) == 1


def test_cli_batch_over_a_hand_edited_manifest_warns_once_and_runs(tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text('{"scenes": 5}')  # a TypeError traceback before
    scene = tmp_path / "a.npz"
    np.savez(scene, **{b: demo_scene(size=32).bands[b] for b in FINE_BANDS + COARSE_BANDS})
    result = run_cli("batch", scene, "-o", out, "--model", REPO / "models" / "demo.onnx", "--format", "npz", "-q")
    assert result.returncode == 0, result.stderr
    (aside,) = _asides(out)
    lines = result.stderr.strip().splitlines()
    damaged = [line for line in lines if "was fitted on synthetic-demo" not in line]  # the demo model's own warning
    assert damaged == [
        f"warning: {out / MANIFEST_NAME}: the batch manifest is damaged ('scenes' is a int, not a list); kept as "
        f"{aside.name}, and a fresh manifest started"
    ]
    assert aside.read_text() == '{"scenes": 5}' and read_manifest(out)["summary"]["done"] == 1


def test_read_json_limits_size_and_depth(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(ValueError, match=rf"x\.json: a list nests JSON {MAX_JSON_DEPTH + 1} levels deep, more than"):
        read_json(path, what="a list")
    path.write_text('["[[[[", {"a": "}}}}\\"]]"}]')  # brackets inside strings are no nesting
    assert read_json(path, what="a list") == ["[[[[", {"a": '}}}}"]]'}]
    with pytest.raises(ValueError, match=r"x\.json: a list cannot be read \(27 bytes, more than 10\)$"):
        read_json(path, what="a list", max_bytes=10)


def test_a_deeply_nested_scene_list_is_one_line(tmp_path):
    listing = tmp_path / "scenes.json"
    listing.write_text("[" * 50_000 + "]" * 50_000)  # a RecursionError before
    with pytest.raises(OptionError, match=r"scenes\.json: scene list nests JSON 50000 levels deep, more than 32$"):
        collect_scenes([listing])


_HOLD_MANIFEST_LOCK = """
import sys
from pathlib import Path
from ssc_edge.io.output import claim_output, claim_path

claim = claim_output(claim_path(Path(sys.argv[1]) / "batch.json"))
print("held", flush=True)
sys.stdin.read()  # a stopped run: holds the manifest's lock until the test closes our stdin
"""


def test_wait_bounds_the_wait_for_the_manifest_lock(tmp_path):
    from tests.runtime._models import write_model

    model = write_model(tmp_path / "m.onnx", blocks=1, width=4)
    scene = tmp_path / "a.npz"
    np.savez(scene, **{b: demo_scene(size=32).bands[b] for b in FINE_BANDS + COARSE_BANDS})
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_MANIFEST_LOCK, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    outcome: dict = {}

    def run() -> None:
        config = BatchConfig(mode="infer", model=model, output_format="npz", in_process=True, wait=1.0)
        try:
            run_batch([scene], out, config)
        except OutputError as exc:
            outcome["error"] = str(exc)

    try:
        start = time.monotonic()
        batch = threading.Thread(target=run)
        batch.start()
        batch.join(timeout=60)  # without the bound it waits for the holder forever
        waited, alive = time.monotonic() - start, batch.is_alive()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    batch.join(timeout=60)
    assert not alive and 1.0 <= waited < 30
    assert outcome["error"] == (f"{out / MANIFEST_NAME}: another run held its lock for more than 1 s (--wait); this "
                                "run's records are in the scenes' reports")  # fmt: skip
    assert json.loads((out / "a_sharpened.json").read_text())["status"] == "done"  # the scene's work is kept
    assert not (out / MANIFEST_NAME).exists()
