#!/usr/bin/env bash
# The prepared GPU check of iem: CUDA masks against CPU masks on 64 Weizmann Horse images
# (released and paper presets) and CUDA images/s on the 1,020-image paper protocol.
# It finishes in under 4 minutes on one H200 and writes gpu_check.{txt,json} to $OUT when set.
#
# Usage (from any directory):  bash benchmarks/gpu_check.sh [python -m benchmarks.gpu_check options]
#   PYTHON=python3.12 bash benchmarks/gpu_check.sh --budget 150
#
# The images come from <repo>/../shared/data, <repo>/shared/data, <repo>/.bench_data or $IEM_DATA.
# A machine that receives only the repository needs a copy inside it, e.g. before sending it:
#   mkdir -p .bench_data && cp -r ../shared/data/weizmann_horse ../shared/data/grabcut .bench_data/
#   echo /.bench_data/ >> .git/info/exclude       # ignored by git; carry it along explicitly
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

# One interpreter start tells both: 3 = no torch, 4 = torch but no iem.
"$PY" -c "
import sys
try:
    import torch
except ImportError:
    sys.exit(3)
try:
    import iem
except ImportError:
    sys.exit(4)
" 2>/dev/null
probe=$?
if [ "$probe" -eq 3 ]; then
    echo "torch is not installed for $PY: set PYTHON to the interpreter that has torch with CUDA"
    exit 2
fi
if [ "$probe" -ne 0 ]; then
    # Offline machines have no package index: install without build isolation or dependencies,
    # and fall back to the source tree when even that fails.
    echo "iem is not importable: pip install -e . (offline)"
    if ! "$PY" -m pip install -q --no-index --no-build-isolation --no-deps -e . ; then
        echo "pip install failed: using PYTHONPATH=src"
        export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
    "$PY" -c "import iem" || { echo "iem still cannot be imported"; exit 2; }
fi
# A hard stop well inside 4 minutes, whatever happens inside.
timeout "${GPU_CHECK_TIMEOUT:-225}" "$PY" -m benchmarks.gpu_check "$@"
status=$?
[ "$status" -eq 124 ] && echo "gpu_check: STOPPED after ${GPU_CHECK_TIMEOUT:-225} s"
exit "$status"
