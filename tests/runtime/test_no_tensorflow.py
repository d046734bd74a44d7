"""The runtime and the CLI's infer path never import TensorFlow (nor tf2onnx, keras, onnx)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_runtime_and_infer_cli_import_no_tensorflow(nhwc_model, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import ssc_edge.runtime
        import ssc_edge.cli.infer
        import ssc_edge.runtime.infer, ssc_edge.runtime.stream, ssc_edge.runtime.quicklook
        from ssc_edge.cli import main
        from ssc_edge.runtime import Sharpener
        rng = np.random.default_rng(0)
        out = Sharpener({str(nhwc_model)!r}, provider="cpu", tile=16).sharpen_array(
            rng.uniform(0, 5000, (24, 24, 4)), rng.uniform(0, 5000, (12, 12, 6)))
        assert out.shape == (24, 24, 6)
        try:
            main(["infer", {str(nhwc_model)!r}, "-o", {str(tmp_path / "out.npz")!r}, "--demo-size", "32", "-q"])
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx", "onnx"))
        print(heavy)
        assert not heavy, heavy
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    assert (tmp_path / "out.npz").is_file()
