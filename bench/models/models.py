#!/usr/bin/python3
"""tensorquant against onnxruntime on real networks, interleaved.

Exports ResNet-18, MobileNetV2 (224 x 224) and InceptionV3 (299 x 299) from torchvision 0.14
with seeded random weights (scripts/torch_models.py, Debian's python3-torch), batch 16;
installs onnxruntime-node (npm, CPU provider, ONNXRUNTIME_NODE_INSTALL=skip so that its
install script downloads nothing else); then, round after round, runs each model through
onnxruntime (bench/models/ort_run.js) and through tq_bench_models on every path, on 1 and
2 threads, and prints the medians over the rounds and the ratios:

  bench/models/models.py [--build build/release] [--rounds 3] [--seconds 2] [--json OUT]

It also times a first load of each model (tq_bench_models --load, a fresh process each
round) against onnxruntime's session creation; goal for ResNet-18: <= 0.3 s.

Paths: float; extrinsic (8-bit outputs, nearest,8,4, on every layer); intrinsic fixed point
(16, 8) on every layer; a datapath int8 x int8 -> int32 (8-bit outputs); an MXFP8 (E4M3)
block datapath with an FP32 accumulator. Goals (issue 32), relative to onnxruntime float on
the same model and thread count unless said: float ResNet-18 and InceptionV3 <= 1.0,
MobileNetV2 <= 1.25; extrinsic <= 1.1 x tensorquant float; intrinsic <= 3; int8 datapath
<= 1.0; MXFP8 <= 3.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = ["resnet18", "mobilenet_v2", "inception_v3"]
PATHS = ["float", "extrinsic8", "intrinsic16_8", "datapath_int8", "datapath_mxfp8"]
ORT_VERSION = "1.31.1"
GOALS = {"float": {"resnet18": 1.0, "mobilenet_v2": 1.25, "inception_v3": 1.0}, "intrinsic16_8": 3.0,
         "datapath_int8": 1.0, "datapath_mxfp8": 3.0}


def ensure_models(out):
    if all(os.path.exists(os.path.join(out, m + ".onnx")) for m in MODELS):
        return
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "torch_models.py"), "export", out, "--set",
                    ",".join(MODELS), "--batch", "16"], check=True)


def ensure_onnxruntime(prefix):
    modules = os.path.join(prefix, "node_modules")
    if not os.path.exists(os.path.join(modules, "onnxruntime-node", "package.json")):
        os.makedirs(prefix, exist_ok=True)
        env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")
        subprocess.run(["npm", "install", "--prefix", prefix, "--no-save", "onnxruntime-node@" + ORT_VERSION],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    return modules


def run_ort(modules, out, model, threads, seconds):
    """Time per image, and the session's creation in seconds."""
    env = dict(os.environ, NODE_PATH=modules)
    r = subprocess.run(["node", os.path.join(ROOT, "bench", "models", "ort_run.js"), os.path.join(out, model + ".onnx"),
                        os.path.join(out, model + ".input.npy"), str(threads), str(seconds)],
                       check=True, env=env, capture_output=True, text=True)
    result = json.loads(r.stdout)
    return result["ms_per_image"], result["load_seconds"]


def run_tq_load(binary, out, model):
    """A first load of the model, in a fresh process."""
    r = subprocess.run([binary, "--load", os.path.join(out, model + ".onnx")], check=True, capture_output=True,
                       text=True)
    return json.loads(r.stdout)["load_seconds"]


def run_tq(binary, out, model, threads, seconds):
    env = dict(os.environ, TQ_BENCH_MODELS=out)
    r = subprocess.run([binary, "--benchmark_filter=^%s/.*/threads:%d/" % (model, threads),
                        "--benchmark_min_time=%g" % seconds, "--benchmark_format=json"],
                       check=True, env=env, capture_output=True, text=True)
    times = {}
    for b in json.loads(r.stdout)["benchmarks"]:
        path = b["name"].split("/")[1]
        times[path] = b.get("ms_per_image") if not b.get("error_occurred") else None
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--json", help="write every measurement here")
    args = ap.parse_args()
    out = os.path.join(args.build, "bench_models")
    binary = os.path.join(args.build, "bench", "tq_bench_models")
    if not os.access(binary, os.X_OK):
        sys.exit("%s is missing: build the target tq_bench_models (Release)" % binary)
    ensure_models(out)
    modules = ensure_onnxruntime(os.path.join(args.build, "onnxruntime-node"))
    samples = {}  # (model, threads, path) -> [ms per image]
    for r in range(args.rounds):
        for model in MODELS:
            samples.setdefault((model, 0, "load"), []).append(run_tq_load(binary, out, model))
            for threads in (1, 2):
                ms, load = run_ort(modules, out, model, threads, args.seconds)
                samples.setdefault((model, threads, "onnxruntime"), []).append(ms)
                samples.setdefault((model, threads, "onnxruntime load"), []).append(load)
                for path, t in run_tq(binary, out, model, threads, args.seconds / 2).items():
                    if t is not None:
                        samples.setdefault((model, threads, path), []).append(t)
        print("round %d of %d done" % (r + 1, args.rounds), file=sys.stderr)
    med = {k: statistics.median(v) for k, v in samples.items()}
    print("| model | threads | onnxruntime float | " + " | ".join(PATHS) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in PATHS) + " |")
    for model in MODELS:
        for threads in (1, 2):
            ort = med.get((model, threads, "onnxruntime"))
            cells = []
            for path in PATHS:
                t = med.get((model, threads, path))
                if t is None:
                    cells.append("refused")
                    continue
                ratio = t / ort
                goal = GOALS.get(path)
                goal = goal.get(model) if isinstance(goal, dict) else goal
                note = ""
                if path == "extrinsic8":
                    base = med.get((model, threads, "float"))
                    note = " (%.2fx float, goal <= 1.1)" % (t / base) if base else ""
                elif goal is not None:
                    note = " (goal <= %g)" % goal
                cells.append("%.1f ms, %.2fx%s" % (t, ratio, note))
            print("| %s | %d | %.1f ms | %s |" % (model, threads, ort, " | ".join(cells)))
    print()
    print("| model | tensorquant load | onnxruntime session, 1 thread | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for model in MODELS:
        a, b = med.get((model, 0, "load")), med.get((model, 1, "onnxruntime load"))
        if a and b:
            print("| %s | %.3f s | %.3f s | %.2fx |" % (model, a, b, a / b))
    print()
    for model in MODELS:
        for path in ["onnxruntime"] + PATHS:
            a, b = med.get((model, 1, path)), med.get((model, 2, path))
            if a and b:
                print("%s %s: 2 threads %.2fx faster than 1" % (model, path, a / b))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"%s/%d/%s" % k: v for k, v in samples.items()}, fh, indent=1)


if __name__ == "__main__":
    main()
