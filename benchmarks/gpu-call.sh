#!/usr/bin/env bash
# Issue 13's GPU figures in one call of the device tool, on a lent GPU machine.
#
# Here, first:  bash scripts/device-kit        (the wheels the GPU image lacks, into .whl/)
# Then the device tool's run with  command "bash benchmarks/gpu-call.sh", carry [".whl"],
# timeout_s 580. The logs come back from $OUT: gpu.txt, bench_gpu.log, bench_tile_io.log.
#
# There: python3 holds torch with CUDA; the wheels go to a folder on PYTHONPATH, and clearcube,
# not installed, is imported from a tree that rebuilds pyproject.toml's package-dir mapping with
# links to this checkout. Each part runs under its own time limit and prints running figures,
# so a part that overruns still leaves a rate and the parts after it still run.
# CALLS_S, REGION_S, TASKS_S, PIPELINE_S, TILE_IO_S set the limits (seconds; 525 in all by
# default, inside the tool's 600); BENCH_ARGS is added to every bench_gpu.py run (e.g.
# "--region-tiles 500").
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/clearcube-gpu}
site=${TMPDIR:-/tmp}/clearcube-site
tree=${TMPDIR:-/tmp}/clearcube-tree
mkdir -p "$out"

want=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$(cat "$root/.whl/PYTHON" 2>/dev/null)" != "$want" ]; then
    echo "gpu-call: .whl holds no kit for Python $want; run 'DEVICE_PYTHON=$want bash" \
        "scripts/device-kit' on the machine that calls the device, and carry .whl" >&2
    exit 2
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$root"/.whl/*.whl || exit 2
rm -rf "$tree" && mkdir -p "$tree" && cp -r "$root/clearcube" "$tree/clearcube"
for part in catalogs pipeline model deploy; do ln -s "$root/$part" "$tree/clearcube/$part"; done
export PYTHONPATH="$site:$tree${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$root/benchmarks"

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
    python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__,
        'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
    python3 -m pip list 2>/dev/null | grep -i -E "^(numpy|pandas|xarray|cuda-core|nvidia-ml-py|dask|distributed|zarr|numcodecs|dask-cuda) "
    echo "cores $(nproc)"
} 2>&1 | tee "$out/gpu.txt"

run() {  # run LIMIT LOG ARGS...: one part under its limit, appended to its log
    local limit=$1 log=$2
    shift 2
    echo "== $* (limit ${limit} s)" | tee -a "$log"
    # the whole output into the log; on the screen (the tool's output tail) without warnings
    timeout -k 10 "$limit" python3 "$@" 2>&1 | tee -a "$log" | grep --line-buffered -v -i "warning"
    echo "== exit ${PIPESTATUS[0]}" | tee -a "$log"
}
# shellcheck disable=SC2086  # BENCH_ARGS is a list of words
{
    run "${CALLS_S:-120}" "$out/bench_gpu.log" bench_gpu.py --parts calls,identity ${BENCH_ARGS:-}
    run "${REGION_S:-120}" "$out/bench_gpu.log" bench_gpu.py --parts region ${BENCH_ARGS:-}
    run "${TASKS_S:-120}" "$out/bench_gpu.log" bench_gpu.py --parts tasks --cube synthetic ${BENCH_ARGS:-}
    run "${PIPELINE_S:-120}" "$out/bench_gpu.log" bench_gpu.py --parts pipeline --cube synthetic \
        ${BENCH_ARGS:-}
    run "${TILE_IO_S:-45}" "$out/bench_tile_io.log" bench_tile_io.py --cube synthetic --repeats 3 \
        --threads 1,4,8 --stand-in-ms 15
}
