#!/usr/bin/python3
"""ONNX models and an independent numpy forward pass, for checking tensorquant's importer
end to end (tools/test_cli.sh). Needs Debian's python3-onnx and python3-numpy, which
belong to /usr/bin/python3.

  onnx_reference.py models DIR            write residual.onnx, mobile.onnx, gate.onnx and qdq.onnx
                                           (random weights)
  onnx_reference.py export-lenet CKPT OUT  the study's LeNet-5 checkpoint (CKPT/LeNet/<layer>/
                                           <weights|bias>.npy, HWIO and [in, out]) as ONNX
  onnx_reference.py forward MODEL IN OUT   the model's output for the .npy input, by numpy
  onnx_reference.py inputs MODEL N OUT     N random inputs in [0, 1] of the model's shape
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


# ---- models ----------------------------------------------------------------------------

def graph_model(nodes, inits, in_shape, out_name, opset=13):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", 10])
    g = helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(v.astype(np.float32), k)
                                                 for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnx_reference.py")
    m.ir_version = 7
    onnx.checker.check_model(m)
    return m


def residual(rng):
    """conv -> relu -> conv -> add (residual) -> relu -> avgpool (ceil_mode) -> flatten -> gemm"""
    w = lambda *s: rng.uniform(-0.5, 0.5, s)
    inits = {"c1.w": w(4, 1, 3, 3), "c1.b": w(4), "c2.w": w(4, 4, 3, 3), "c2.b": w(4),
             "fc.w": w(10, 4 * 5 * 5), "fc.b": w(10)}
    n = helper.make_node
    nodes = [n("Conv", ["input", "c1.w", "c1.b"], ["a"], name="/stem/conv/Conv", pads=[1, 1, 1, 1], strides=[3, 3]),
             n("Relu", ["a"], ["b"], name="/stem/relu/Relu"),
             n("Conv", ["b", "c2.w", "c2.b"], ["c"], name="/block1/conv/Conv", pads=[1, 1, 1, 1]),
             n("Add", ["c", "b"], ["d"], name="/block1/Add"),
             n("Relu", ["d"], ["e"], name="/block1/relu/Relu"),
             n("AveragePool", ["e"], ["f"], name="/pool/AveragePool", kernel_shape=[3, 3], strides=[2, 2],
               ceil_mode=1),
             n("Flatten", ["f"], ["g"], name="/Flatten"),
             n("Gemm", ["g", "fc.w", "fc.b"], ["logits"], name="/fc/Gemm", transB=1)]
    return graph_model(nodes, inits, ["N", 1, 28, 28], "logits")


def mobile(rng):
    """depthwise conv (SAME_UPPER, stride 2) -> ReLU6 (Clip) -> pointwise conv -> unfolded
    BatchNormalization -> ReLU -> global average pool -> flatten -> gemm"""
    w = lambda *s: rng.uniform(-0.5, 0.5, s)
    inits = {"stem.w": w(4, 1, 3, 3), "dw.w": w(4, 1, 3, 3), "dw.b": w(4), "pw.w": w(8, 4, 1, 1),
             "bn.scale": rng.uniform(0.5, 1.5, 8), "bn.bias": w(8), "bn.mean": w(8), "bn.var": rng.uniform(0.2, 2, 8),
             "lo": np.array(0.0), "hi": np.array(6.0), "fc.w": w(10, 8), "fc.b": w(10)}
    n = helper.make_node
    nodes = [n("Conv", ["input", "stem.w"], ["s"], name="/stem/Conv", kernel_shape=[3, 3]),
             n("Conv", ["s", "dw.w", "dw.b"], ["a"], name="/features/dw/Conv", group=4, strides=[2, 2],
               auto_pad="SAME_UPPER"),
             n("Clip", ["a", "lo", "hi"], ["b"], name="/features/relu6/Clip"),
             n("Conv", ["b", "pw.w"], ["c"], name="/features/pw/Conv"),
             n("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["d"],
               name="/features/bn/BatchNormalization", epsilon=1e-3),
             n("Relu", ["d"], ["e"], name="/features/relu/Relu"),
             n("GlobalAveragePool", ["e"], ["f"], name="/pool/GlobalAveragePool"),
             n("Flatten", ["f"], ["g"], name="/flatten/Flatten"),
             n("Gemm", ["g", "fc.w", "fc.b"], ["logits"], name="/classifier/Gemm", transB=1, alpha=0.5, beta=2.0)]
    return graph_model(nodes, inits, ["N", 1, 28, 28], "logits")


def gate(rng):
    """conv -> sigmoid -> max pool (ceil_mode, pads) -> conv (dilated) -> relu -> global max pool
    -> flatten -> gemm"""
    w = lambda *s: rng.uniform(-0.5, 0.5, s)
    inits = {"c1.w": w(3, 1, 5, 5), "c1.b": w(3), "c2.w": w(6, 3, 3, 3), "c2.b": w(6), "fc.w": w(10, 6), "fc.b": w(10)}
    n = helper.make_node
    nodes = [n("Conv", ["input", "c1.w", "c1.b"], ["a"], name="/c1/Conv", strides=[2, 2]),
             n("Sigmoid", ["a"], ["b"], name="/c1/Sigmoid"),
             n("MaxPool", ["b"], ["c"], name="/pool/MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0],
               ceil_mode=1),
             n("Conv", ["c", "c2.w", "c2.b"], ["d"], name="/c2/Conv", dilations=[2, 2], pads=[2, 2, 2, 2]),
             n("Relu", ["d"], ["e"], name="/c2/Relu"),
             n("GlobalMaxPool", ["e"], ["f"], name="/gpool/GlobalMaxPool"),
             n("Flatten", ["f"], ["g"], name="/Flatten"),
             n("Gemm", ["g", "fc.w", "fc.b"], ["logits"], name="/fc/Gemm", transB=1)]
    return graph_model(nodes, inits, ["N", 1, 28, 28], "logits")


def qdq(rng):
    """A QDQ model as onnxruntime's quantizer writes one: uint8 input, conv with int8 weights
    per output channel and an int32 bias -> relu -> quantized -> max pool -> flatten -> gemm
    with its float weight quantized per output -> int8 logits, dequantized. The scales inside
    are powers of two, so every float sum is exact and the outputs must match bit for bit."""
    t = numpy_helper.from_array
    s_in, s_w, s_r, s_out = 2.0 ** -7, np.array([2.0 ** -6, 2.0 ** -7, 2.0 ** -5, 2.0 ** -6]), 2.0 ** -4, 0.1
    s_fc = 2.0 ** -np.array([7, 6, 7, 8, 7, 6, 7, 7, 6, 8])
    f32 = lambda v: np.asarray(v, np.float32)
    inits = [t(rng.integers(-127, 128, (4, 1, 5, 5)).astype(np.int8), "c.wq"), t(f32(s_w), "c.ws"),
             t(np.zeros(4, np.int8), "c.wz"), t(rng.integers(-3000, 3000, 4).astype(np.int32), "c.bq"),
             t(f32(s_in * s_w), "c.bs"), t(np.zeros(4, np.int32), "c.bz"),
             t(f32(s_in), "x.s"), t(np.array(0, np.uint8), "x.z"), t(f32(s_r), "r.s"), t(np.array(0, np.uint8), "r.z"),
             t(f32(rng.uniform(-0.5, 0.5, (10, 64))), "fc.w"), t(f32(s_fc), "fc.s"), t(np.zeros(10, np.int8), "fc.z"),
             t(f32(rng.integers(-900, 900, 10) / 2048.0), "fc.b"), t(f32(s_out), "y.s"), t(np.array(0, np.int8), "y.z")]
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["input", "x.s", "x.z"], ["xq"], name="input_QuantizeLinear"),
             n("DequantizeLinear", ["xq", "x.s", "x.z"], ["xd"], name="input_DequantizeLinear"),
             n("DequantizeLinear", ["c.wq", "c.ws", "c.wz"], ["w"], name="c.w_DequantizeLinear", axis=0),
             n("DequantizeLinear", ["c.bq", "c.bs", "c.bz"], ["b"], name="c.b_DequantizeLinear", axis=0),
             n("Conv", ["xd", "w", "b"], ["c"], name="/conv/Conv", strides=[3, 3]),
             n("Relu", ["c"], ["r"], name="/relu/Relu"),
             n("QuantizeLinear", ["r", "r.s", "r.z"], ["rq"], name="r_QuantizeLinear"),
             n("DequantizeLinear", ["rq", "r.s", "r.z"], ["rd"], name="r_DequantizeLinear"),
             n("MaxPool", ["rd"], ["p"], name="/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
             n("Flatten", ["p"], ["f"], name="/flatten/Flatten"),
             n("QuantizeLinear", ["fc.w", "fc.s", "fc.z"], ["fwq"], name="fc.w_QuantizeLinear", axis=0),
             n("DequantizeLinear", ["fwq", "fc.s", "fc.z"], ["fw"], name="fc.w_DequantizeLinear", axis=0),
             n("Gemm", ["f", "fw", "fc.b"], ["logits"], name="/fc/Gemm", transB=1),
             n("QuantizeLinear", ["logits", "y.s", "y.z"], ["yq"], name="logits_QuantizeLinear"),
             n("DequantizeLinear", ["yq", "y.s", "y.z"], ["y"], name="logits_DequantizeLinear")]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                          opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx_reference.py")
    m.ir_version = 7
    onnx.checker.check_model(m)
    return m


def export_lenet(ckpt):
    load = lambda layer, p: np.load(f"{ckpt}/LeNet/{layer}/{p}.npy")
    inits, nodes, x = {}, [], "input"
    n = helper.make_node
    for layer, pad in (("conv1", 2), ("conv2", 0)):
        inits[f"{layer}.weight"] = load(layer, "weights").transpose(3, 2, 0, 1)  # HWIO -> OIHW
        inits[f"{layer}.bias"] = load(layer, "bias")
        nodes += [n("Conv", [x, f"{layer}.weight", f"{layer}.bias"], [f"{layer}_c"], name=f"/{layer}/Conv",
                    pads=[pad] * 4),
                  n("Relu", [f"{layer}_c"], [f"{layer}_r"], name=f"/{layer}/Relu")]
        pool = "pool" + layer[-1]
        nodes.append(n("MaxPool", [f"{layer}_r"], [pool], name=f"/{pool}/MaxPool", kernel_shape=[2, 2], strides=[2, 2]))
        x = pool
    nodes.append(n("Flatten", [x], ["flat"], name="/flatten/Flatten"))
    x = "flat"
    for layer in ("fc3", "fc4", "fc5"):
        wt = load(layer, "weights")  # [in, out]
        if layer == "fc3":  # rows in the network's H, W, C order to ONNX's C, H, W
            wt = wt.reshape(5, 5, 16, -1).transpose(2, 0, 1, 3).reshape(400, -1)
        inits[f"{layer}.weight"] = wt.T
        inits[f"{layer}.bias"] = load(layer, "bias")
        nodes.append(n("Gemm", [x, f"{layer}.weight", f"{layer}.bias"], [f"{layer}_o"], name=f"/{layer}/Gemm", transB=1))
        x = f"{layer}_o"
        if layer != "fc5":
            nodes.append(n("Relu", [x], [f"{layer}_r"], name=f"/{layer}/Relu"))
            x = f"{layer}_r"
    return graph_model(nodes, inits, ["N", 1, 28, 28], x)


# ---- the forward pass (float64), as ONNX defines each operator --------------------------

def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def pads_of(a, x, k, strides, dil):
    auto = a.get("auto_pad", b"NOTSET").decode()
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for d in range(2):
            out = -(-x.shape[2 + d] // strides[d])
            total = max(0, (out - 1) * strides[d] + (k[d] - 1) * dil[d] + 1 - x.shape[2 + d])
            small, large = total // 2, total - total // 2
            pads.append((small, large) if auto == "SAME_UPPER" else (large, small))
        return [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
    if auto == "VALID":
        return [0, 0, 0, 0]
    return list(a.get("pads", [0, 0, 0, 0]))


def conv(x, w, b, a):
    strides, dil, group = a.get("strides", [1, 1]), a.get("dilations", [1, 1]), a.get("group", 1)
    k = w.shape[2:]
    t, l, bo, r = pads_of(a, x, k, strides, dil)
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    n, c = x.shape[:2]
    o = w.shape[0]
    oh = (xp.shape[2] - (k[0] - 1) * dil[0] - 1) // strides[0] + 1
    ow = (xp.shape[3] - (k[1] - 1) * dil[1] - 1) // strides[1] + 1
    y = np.zeros((n, o, oh, ow))
    cg, og = c // group, o // group
    for p in range(k[0]):
        for q in range(k[1]):
            patch = xp[:, :, p * dil[0]:p * dil[0] + strides[0] * (oh - 1) + 1:strides[0],
                       q * dil[1]:q * dil[1] + strides[1] * (ow - 1) + 1:strides[1]]
            for g in range(group):
                y[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch[:, g * cg:(g + 1) * cg],
                                                       w[g * og:(g + 1) * og, :, p, q])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def pool(x, a, op):
    k, strides = a["kernel_shape"], a.get("strides", [1, 1])
    t, l, bo, r = pads_of(a, x, k, strides, [1, 1])
    if a.get("ceil_mode", 0):
        for d, (lo, hi) in enumerate(((t, bo), (l, r))):
            size = x.shape[2 + d] + lo + hi
            extra = (-(size - k[d]) % strides[d])
            if d == 0:
                bo += extra
            else:
                r += extra
    fill = -np.inf if op == "MaxPool" else np.nan
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)), constant_values=fill)
    oh = (xp.shape[2] - k[0]) // strides[0] + 1
    ow = (xp.shape[3] - k[1]) // strides[1] + 1
    y = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * strides[0]:i * strides[0] + k[0], j * strides[1]:j * strides[1] + k[1]]
            y[:, :, i, j] = win.max(axis=(2, 3)) if op == "MaxPool" else np.nanmean(win, axis=(2, 3))
    return y


def per_axis(v, node, a, rank):
    """A scale or zero point shaped to broadcast along the node's axis."""
    if v.size == 1:
        return v.reshape(())
    shape = [1] * rank
    shape[a.get("axis", 1) % rank] = v.size
    return v.reshape(shape)


def quantize_linear(x, s, z, node, a):
    """ONNX's QuantizeLinear in float32: x / s, round half to even, + z, saturate."""
    lo, hi = (-128, 127) if z is not None and z.dtype == np.int8 else (0, 255)
    zf = np.float32(0) if z is None else per_axis(z.astype(np.float32), node, a, x.ndim)
    q = np.rint(x.astype(np.float32) / per_axis(s.astype(np.float32), node, a, x.ndim)) + zf
    return np.clip(q, lo, hi).astype(z.dtype if z is not None else np.uint8)


def dequantize_linear(q, s, z, node, a):
    """ONNX's DequantizeLinear in float32: (q - z) * s."""
    zi = 0 if z is None else per_axis(z.astype(np.int64), node, a, q.ndim)
    return ((q.astype(np.int64) - zi).astype(np.float32) * per_axis(s.astype(np.float32), node, a, q.ndim))


def forward(model, x):
    env = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    env = {k: v if v.dtype.kind in "iu" else v.astype(np.float64) for k, v in env.items()}
    env[model.graph.input[0].name] = x.astype(np.float64)
    for node in model.graph.node:
        a, ins = attrs(node), [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Conv":
            y = conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)
        elif op == "Relu":
            y = np.maximum(ins[0], 0)
        elif op == "Clip":
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else -np.inf
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else np.inf
            y = np.clip(ins[0], lo, hi)
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op in ("MaxPool", "AveragePool"):
            y = pool(ins[0], a, op)
        elif op == "GlobalAveragePool":
            y = ins[0].mean(axis=(2, 3), keepdims=True)
        elif op == "GlobalMaxPool":
            y = ins[0].max(axis=(2, 3), keepdims=True)
        elif op == "Sigmoid":
            y = 1 / (1 + np.exp(-ins[0]))
        elif op == "BatchNormalization":
            s = lambda v: v.reshape(1, -1, 1, 1)
            y = (ins[0] - s(ins[3])) / np.sqrt(s(ins[4]) + a.get("epsilon", 1e-5)) * s(ins[1]) + s(ins[2])
        elif op == "Flatten":
            y = ins[0].reshape(ins[0].shape[0], -1)
        elif op == "QuantizeLinear":
            y = quantize_linear(ins[0], ins[1], ins[2] if len(ins) > 2 else None, node, a)
        elif op == "DequantizeLinear":
            y = dequantize_linear(ins[0], ins[1], ins[2] if len(ins) > 2 else None, node, a).astype(np.float64)
        elif op == "Gemm":
            b = ins[1].T if a.get("transB", 0) else ins[1]
            y = a.get("alpha", 1.0) * ins[0] @ b + a.get("beta", 1.0) * ins[2]
        else:
            sys.exit(f"onnx_reference.py: no reference for {op}")
        env[node.output[0]] = y
    return env[model.graph.output[0].name]


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "models":
        rng = np.random.default_rng(2026)
        onnx.save(residual(rng), f"{args[0]}/residual.onnx")
        onnx.save(mobile(rng), f"{args[0]}/mobile.onnx")
        onnx.save(gate(rng), f"{args[0]}/gate.onnx")
        onnx.save(qdq(rng), f"{args[0]}/qdq.onnx")
    elif cmd == "export-lenet":
        onnx.save(export_lenet(args[0]), args[1])
    elif cmd == "forward":
        out = forward(onnx.load(args[0]), np.load(args[1]))
        np.save(args[2], out.astype(np.float32))
    elif cmd == "inputs":
        m = onnx.load(args[0])
        dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][1:]
        np.save(args[2], np.random.default_rng(7).uniform(0, 1, [int(args[1])] + dims).astype(np.float32))
    else:
        sys.exit(__doc__)
