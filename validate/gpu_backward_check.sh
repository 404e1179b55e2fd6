#!/usr/bin/env bash
# One-shot GPU check of the Triton GNA backward kernel (run from the repository root on a machine
# with a CUDA GPU, torch and triton). About 5-8 minutes on an H100/H200, most of it compiling.
#
#   1. the backward tests on the GPU: gradients against float64 autograd (ranks 1-3, fp16/bf16/fp32,
#      head dims up to 128, realistic tiles) and the per-program tile counters against the plan;
#      the forward kernel tests too (the forward now optionally stores the log-sum-exp);
#   2. the harness with --backprop on the bwd-smoke suite: forward and backward times of our
#      kernels, torch SDPA and FlexAttention, rows with pass = fwd / bwd, gradient cross-checks.
#
# Results go to $OUT (default: validate/data/gpu-backward), a log per stage.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-validate/data/gpu-backward}"
mkdir -p "$OUT"
unset TRITON_INTERPRET
export PYTHONPATH="$PWD:$PWD/validate${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"

echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" \
    | tee -a "$OUT/device.txt"

echo "== 1. kernel tests on the GPU"
timeout 300 $PY -m pytest -q -p no:cacheprovider --durations=10 \
    tests/test_validate_backward.py tests/test_validate_kernel.py 2>&1 | tee "$OUT/pytest.log" | tail -25
tests_rc=${PIPESTATUS[0]}

echo "== 2. harness --backprop, suite bwd-smoke"
timeout "${HARNESS_TIMEOUT:-420}" $PY -m gnasim_validate.harness --suite bwd-smoke --backprop \
    --sets 2 --out "$OUT/bwd-smoke.csv" ${HARNESS_ARGS:-} 2>&1 | tee "$OUT/harness.log" | tail -60
harness_rc=${PIPESTATUS[0]}

echo "== summary: tests rc=$tests_rc harness rc=$harness_rc"
if [ -f "$OUT/bwd-smoke.csv" ]; then
  $PY - "$OUT/bwd-smoke.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{len(rows)} rows")
for r in rows:
    print(f"{r['pass']} {r['implementation']:17s} {r['masking'] or '-':8s} {r['layout']:>10s} "
          f"w{r['window']:>10s} s{r['stride']:>8s} q{r['q_tile'] or '-':>6s} kv{r['kv_tile'] or '-':>6s} "
          f"{float(r['attention_ms']):9.4f} ms  speedup {r['speedup'] or '-':>7s} "
          f"bound {r['tile_bound'] or '-':>7s}  diff {r['max_abs_diff'] or '-'} {r['diff_against']}")
EOF
fi
exit $(( tests_rc != 0 || harness_rc != 0 ))
