#!/usr/bin/env bash
# The command line of tensorquant-study: bad arguments, missing data and unknown scopes
# give one line naming the problem and exit code 2; predict writes the logits as .npy;
# a tiny study runs, resumes, and reports.
# Usage: test_cli.sh <tensorquant-study> <work dir>
set -uo pipefail
tool=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
fail=0
expect() { # expect <code> <text in stderr> <args...>
    local code=$1 text=$2
    shift 2
    "$tool" "$@" >"$work/out" 2>"$work/err"
    local got=$?
    if [ $got -ne "$code" ] || ! grep -qF -- "$text" "$work/err"; then
        echo "FAILED: tensorquant-study $* gave $got (wanted $code and '$text'):"
        cat "$work/err"
        fail=1
    fi
    if [ "$code" -eq 2 ] && [ "$(grep -c . "$work/err")" -ne 1 ]; then
        echo "FAILED: tensorquant-study $* printed more than one line:"
        cat "$work/err"
        fail=1
    fi
}
data=/usr/share/datasets/fashion-mnist
expect 2 "widths 'x'" sweep --widths x --out "$work/a" --network lenet5 --epochs 0
expect 2 "shard '3/2'" sweep --shard 3/2 --out "$work/a"
expect 2 "no Fashion-MNIST" sweep --data "$work/nothing" --out "$work/a"
expect 2 "network 'alexnet'" sweep --network alexnet --out "$work/a"
expect 2 "nosuch" nosuch
expect 2 "--frobnicate" sweep --frobnicate
expect 2 "no such directory" report --out "$work/nothing"
if [ -f "$data/t10k-images-idx3-ubyte.gz" ]; then
    expect 2 "LeNet/nothing" layers --network lenet5 --subunits LeNet/nothing --epochs 0 --out "$work/a"
    expect 2 "unknown experiment 'swep'" all --network lenet5 --experiments swep --epochs 0 --out "$work/a"
    # a tiny study: two roundings, three widths, on 200 images; then again (resumed: nothing new)
    args=(all --network lenet5 --epochs 0 --images 200 --layer-images 100 --widths 4,8,12 --roundings nearest,down
          --experiments sweep,fractions,layers --out "$work/study")
    expect 0 "records in" "${args[@]}"
    lines=$(wc -l <"$work/study/results.jsonl")
    expect 0 "records in" "${args[@]}"
    [ "$(wc -l <"$work/study/results.jsonl")" -eq "$lines" ] || { echo "FAILED: the rerun added records"; fail=1; }
    [ -s "$work/study/report.md" ] && [ -s "$work/study/plots/sweep_LeNet.png" ] || { echo "FAILED: no report"; fail=1; }
    grep -q "tables 5 and 6" "$work/study/report.md" || { echo "FAILED: no layer table"; fail=1; }
    # predict: 3 images as float32 (3, 28, 28), logits (3, 10)
    python3 - "$work/x.npy" <<'PY'
import struct, sys
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 28, 28), }"
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<%df" % (3 * 28 * 28), *[(i % 17) / 16 for i in range(3 * 28 * 28)]))
PY
    mkdir -p "$work/maps" && echo '{"LeNet": "nearest,8,4"}' >"$work/maps/extrinsic.json"
    expect 0 "wrote the logits of 3 images" predict --network lenet5 --models "$work/study/models" --maps "$work/maps" \
        --input "$work/x.npy" --output "$work/y.npy" --out "$work/study"
    python3 - "$work/y.npy" <<'PY' || fail=1
import sys
data = open(sys.argv[1], "rb").read()
n = int.from_bytes(data[8:10], "little")
header = data[10:10 + n].decode()
assert "(3, 10)" in header and "<f4" in header, header
assert len(data) == 10 + n + 3 * 10 * 4, len(data)
PY
    echo '{"LeNet/nothing": "nearest,8,4"}' >"$work/maps/extrinsic.json"
    expect 2 "LeNet/nothing" predict --network lenet5 --models "$work/study/models" --maps "$work/maps" \
        --input "$work/x.npy" --output "$work/y.npy" --out "$work/study"
fi
exit $fail
