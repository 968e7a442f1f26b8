#!/usr/bin/env bash
# The command line of tensorquant-study: bad arguments, missing data and unknown scopes
# give one line naming the problem and exit code 2; predict writes the logits as .npy;
# a tiny study runs, resumes, and reports.
# With "onnx" as the third argument (the tool has the ONNX importer), --model too: predict
# on models written by scripts/onnx_reference.py against its numpy forward pass, the
# study's LeNet exported to ONNX against the built-in one, layers --list, and errors.
# Usage: test_cli.sh <tensorquant-study> <work dir> [onnx]
set -uo pipefail
tool=$1
work=$2
with_onnx=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)
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
expect 2 "expected LABEL=QUANTIZER" formats --formats mxfp4 --out "$work/a" --network lenet5 --epochs 0
expect 2 "--formats 'X=mxfp5'" formats --formats "A=mxfp4;X=mxfp5" --out "$work/a" --network lenet5 --epochs 0
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
        --input "$work/x.npy" --output "$work/y.npy"
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
        --input "$work/x.npy" --output "$work/y.npy"
fi

if [ "$with_onnx" = onnx ]; then
    py=/usr/bin/python3 # Debian's python3-onnx and python3-numpy belong to it
    ref="$here/scripts/onnx_reference.py"
    mkdir -p "$work/onnx"
    $py "$ref" models "$work/onnx" || { echo "FAILED: onnx_reference.py models"; fail=1; }
    for m in residual mobile gate qdq; do
        $py "$ref" inputs "$work/onnx/$m.onnx" 6 "$work/onnx/x.npy"
        expect 0 "wrote the outputs of 6 inputs" predict --model "$work/onnx/$m.onnx" --images "$work/onnx/x.npy" \
            --out "$work/onnx/$m.tq.npy"
        $py "$ref" forward "$work/onnx/$m.onnx" "$work/onnx/x.npy" "$work/onnx/$m.ref.npy"
        $py - "$work/onnx/$m.tq.npy" "$work/onnx/$m.ref.npy" $m <<'PY' || { echo "FAILED: $m differs from numpy"; fail=1; }
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.shape == b.shape == (6, 10), (a.shape, b.shape)
err = np.abs(a - b).max()
print(f"{sys.argv[1]}: largest difference from numpy {err:.2e}")
if sys.argv[3] == "qdq":  # every quantization point as ONNX defines it: bit for bit
    assert np.array_equal(a, b) and len(np.unique(a)) > 20, (err, np.unique(a))
else:
    assert np.allclose(a, b, rtol=1e-4, atol=1e-5), err
PY
    done
    "$tool" layers --list --model "$work/onnx/qdq.onnx" >"$work/onnx/list" 2>&1
    grep -q '"qdq/conv": "affine,0.0625,0,0,255,divide"' "$work/onnx/list" ||
        { echo "FAILED: layers --list of a QDQ model"; cat "$work/onnx/list"; fail=1; }
    cp "$work/onnx/mobile.onnx" "$work/onnx/model.onnx"
    "$tool" layers --list --model "$work/onnx/model.onnx" >"$work/onnx/list" 2>&1
    grep -q "model/features/dw .*conv2d" "$work/onnx/list" && grep -q "model/features  *3 layers" "$work/onnx/list" ||
        { echo "FAILED: layers --list"; cat "$work/onnx/list"; fail=1; }
    expect 2 "no/such.onnx" layers --list --model "$work/no/such.onnx"
    printf 'not a model' >"$work/onnx/bad.onnx"
    expect 2 "bad.onnx: not an ONNX model" sweep --model "$work/onnx/bad.onnx"
    relu=/usr/share/libonnx-testdata/data/node/test_relu/model.onnx # takes [3, 4, 5]
    [ -f $relu ] && expect 2 "needs [N, 1, 28, 28] and [N, 10]" sweep --model $relu --out "$work/onnx"
    expect 2 "--std: expected a positive number" predict --model "$work/onnx/residual.onnx" --std 0 \
        --images "$work/onnx/x.npy" --out "$work/onnx/y.npy"
    if [ -f "$data/t10k-images-idx3-ubyte.gz" ]; then
        # the study's LeNet as ONNX (scope LeNet, from the file name): the same logits, bit for
        # bit, under the same maps, and the same accuracies in the study
        $py "$ref" export-lenet "$work/study/models/lenet5" "$work/onnx/LeNet.onnx"
        echo '{"LeNet": "nearest,8,4"}' >"$work/maps/extrinsic.json"
        expect 0 "wrote the logits of 3 images" predict --network lenet5 --models "$work/study/models" \
            --maps "$work/maps" --input "$work/x.npy" --output "$work/y_builtin.npy"
        $py -c "import numpy as np, sys; np.save(sys.argv[2], np.load(sys.argv[1]).reshape(3, 1, 28, 28))" \
            "$work/x.npy" "$work/x_nchw.npy"
        expect 0 "wrote the outputs of 3 inputs" predict --model "$work/onnx/LeNet.onnx" --maps "$work/maps" \
            --images "$work/x_nchw.npy" --out "$work/y_onnx.npy"
        cmp -s "$work/y_builtin.npy" "$work/y_onnx.npy" || { echo "FAILED: imported LeNet differs"; fail=1; }
        margs=(sweep --epochs 0 --images 200 --widths 4,8 --roundings nearest)
        expect 0 "records in" "${margs[@]}" --network lenet5 --models "$work/study/models" --out "$work/m1"
        expect 0 "records in" "${margs[@]}" --model "$work/onnx/LeNet.onnx" --out "$work/m2"
        $py - "$work/m1/results.jsonl" "$work/m2/results.jsonl" <<'PY' || { echo "FAILED: study records differ"; fail=1; }
import json, sys
acc = lambda f: sorted((r["placement"], r["rounding"], r["W"], r["accuracy"]) for r in map(json.loads, open(f)))
a, b = acc(sys.argv[1]), acc(sys.argv[2])
assert a == b and len(a) == 4, (a, b)
PY
    fi
fi
exit $fail
