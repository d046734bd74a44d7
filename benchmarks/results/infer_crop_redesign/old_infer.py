"""infer of the real crop with the package of another checkout on PYTHONPATH (the 'before' of README.md here)."""

import sys

import ssc_edge.cli

assert ssc_edge.cli.__file__.startswith("/tmp/old754"), ssc_edge.cli.__file__
CROP = "/work/shared/data/real/l1c_T31TDH_20150726_crop"
sys.argv = ["ssc-edge", "infer", "/work/main/models/demo.onnx", CROP, "-o", "/tmp/ib/old.tif", "--force", "--quiet"]
ssc_edge.cli.main()
