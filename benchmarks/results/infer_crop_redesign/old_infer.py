import sys
sys.argv = ["ssc-edge", "infer", "/work/main/models/demo.onnx", "/work/shared/data/real/l1c_T31TDH_20150726_crop", "-o", "/tmp/ib/old.tif", "--force", "--quiet"]
import ssc_edge.cli
assert ssc_edge.cli.__file__.startswith("/tmp/old754"), ssc_edge.cli.__file__
ssc_edge.cli.main()
