#!/bin/bash
# The kernel suite and benchmark on a machine with a GPU and no Node or npm (e.g. a lent NVIDIA
# machine, x86-64 Linux). Run from the repository root, with the bundle made here beforehand by
#   npm run gpu:node -- bundle .gpu-carry --portable
# and, if the machine has no Vulkan loader, the libvulkan1 .deb (and friends) in .gl/. Results:
# $OUT/{machine.txt,info.json,test.json,bench-2048.json,bench-8192.json,log.txt}.
set -uo pipefail
# The bundle is copied to /tmp and unpacked there (the carried folder stays as it was).
W=/tmp/node-gpu-app
rm -rf "$W" && cp -r "${1:-.gpu-carry}" "$W" || exit 1
C=$W
OUT=${OUT:-/tmp/node-gpu-out}
mkdir -p "$OUT"
LOG=$OUT/log.txt
: >"$LOG"
if [ -z "${SKIP_DEBS:-}" ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
unxz() { python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; }
NODE=$(command -v node || true)
if [ -n "${CARRIED_NODE:-}" ] || [ -z "$NODE" ] || ! "$NODE" -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  unxz "$C/node.xz" /tmp/node && chmod +x /tmp/node && NODE=/tmp/node
fi
D=$C/node_modules/webgpu/dist/linux-x64
[ -f "$D/dawn.node" ] || unxz "$D/dawn.node.xz" "$D/dawn.node"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; break; fi
  done
fi
{
  date -u
  uname -a
  echo "node $("$NODE" --version)  VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv
  nvidia-smi
} >"$OUT/machine.txt" 2>&1
head -4 "$OUT/machine.txt"
APP=$C/node-gpu.mjs
TEST_ARGS=${TEST_ARGS:-}
BENCH_ARGS=${BENCH_ARGS:-}  # appended to both benchmark runs
BENCH_SMALL_ARGS=${BENCH_SMALL_ARGS:-}
BENCH_LARGE_ARGS=${BENCH_LARGE_ARGS:---size 8192 --lanes 1,4,16,32 --no-subgroups --seconds 0.1 --no-stage}
rc=0
timeout 90 "$NODE" "$APP" info --json "$OUT/info.json" 2>&1 | tee -a "$LOG" || rc=1
timeout "${TEST_TIMEOUT:-240}" "$NODE" "$APP" test --json "$OUT/test.json" $TEST_ARGS 2>&1 | tee -a "$LOG" || rc=1
timeout "${BENCH_TIMEOUT:-120}" "$NODE" "$APP" bench --json "$OUT/bench-2048.json" $BENCH_SMALL_ARGS $BENCH_ARGS 2>&1 | tee -a "$LOG" || rc=1
timeout "${BENCH_TIMEOUT:-120}" "$NODE" "$APP" bench --json "$OUT/bench-8192.json" $BENCH_LARGE_ARGS $BENCH_ARGS 2>&1 | tee -a "$LOG" || rc=1
exit $rc
