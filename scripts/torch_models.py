#!/usr/bin/python3
"""Real architectures for tensorquant's ONNX importer: torchvision 0.14's classifiers and a
few small networks of today's building blocks, with seeded random weights (every batch norm
and layer norm given non-trivial statistics and affine parameters, so that folding mistakes
show), exported by torch.onnx, together with torch's outputs on a fixed random batch. Needs
Debian's python3-torch and python3-torchvision, which belong to /usr/bin/python3.

  torch_models.py export OUT [--set ci|all|NAME,...] [--size S] [--batch B]
      writes OUT/<name>.onnx, <name>.input.npy, <name>.output.npy and OUT/manifest.json
  torch_models.py table OUT STUDY [--batch B] [--skip NAME,...]
      exports every torchvision classifier, smallest first, runs tensorquant-study (STUDY) on
      it and prints the table of README.md: operators, imports, largest error, load time
      (processor time of a process that only loads it)

The `ci` set: mobilenet_v3_small, efficientnet_b0, shufflenet_v2_x0_5, squeezenet1_1,
densenet121 (at S x S, 64 by default), a 2-layer VisionTransformer on 32 x 32, and small
networks of a ConvNeXt (exported at opset 13: layer norm and GELU as the patterns of
primitive operators), a Swin transformer (shifted windows), a text transformer (token ids,
embeddings, attention) and a decoder (transposed convolutions, resizing, reflection padding).
"""
import argparse
import collections
import io
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

warnings.filterwarnings("ignore")


# ---- weights ---------------------------------------------------------------------------

def randomise(model, seed):
    """Seeded weights; normalisations with non-trivial statistics and affine parameters;
    parameters that start at zero (a classifier's head) or as a tiny layer scale made to
    matter."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
        elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)) and m.weight is not None:
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    for name, p in model.named_parameters():
        if p.dim() >= 2 and not p.detach().abs().sum():  # a zero-initialised head would give zero logits
            p.data.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / p.shape[-1] ** 0.5)
        elif "layer_scale" in name:
            p.data.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.25)
        elif name.endswith("class_token") or "pos_embedding" in name or "relative_position_bias_table" in name:
            p.data.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


# ---- the small networks ------------------------------------------------------------------

class TextTransformer(nn.Module):
    """Token ids -> embeddings + positions -> 2 transformer encoder layers -> mean -> classes."""

    def __init__(self, vocab=50, tokens=12, width=32, classes=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(1, tokens, width) * 0.2)
        layer = nn.TransformerEncoderLayer(width, 4, 64, dropout=0.0, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, classes)

    def forward(self, ids):
        x = self.embed(ids) + self.position
        return self.head(self.encoder(x).mean(dim=1))


class Decoder(nn.Module):
    """An encoder-decoder of images: strided convolutions down, transposed convolutions and
    bilinear / nearest resizing up, reflection padding, a skip connection, channel softmax."""

    def __init__(self):
        super().__init__()
        self.down1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.up1 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.out = nn.Conv2d(8, 4, 3)

    def forward(self, x):
        a = F.relu(self.down1(x))
        b = F.leaky_relu(self.down2(a), 0.1)
        c = torch.tanh(self.up1(b))
        d = torch.cat([c, a], dim=1)
        e = F.interpolate(self.up2(d), scale_factor=0.5, mode="bilinear", align_corners=False)
        e = F.interpolate(e, scale_factor=2, mode="nearest")
        e = F.pad(e, (1, 1, 1, 1), mode="reflect")
        return torch.log_softmax(self.out(e), dim=1)


def small_convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    return ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)


def small_swin():
    return torchvision.models.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4],
                                              window_size=[4, 4], num_classes=10)


def small_vit():
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                               hidden_dim=32, mlp_dim=64, num_classes=10)


# name -> (constructor, input shape without the batch, input kind, opset)
def catalogue(size):
    tv = torchvision.models
    ci = collections.OrderedDict()
    for name in ["mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x0_5", "squeezenet1_1", "densenet121"]:
        ci[name] = (lambda n=name: tv.get_model(n), (3, size, size), "image", 17)
    ci["vit_2layer_32"] = (small_vit, (3, 32, 32), "image", 17)
    ci["convnext_small_opset13"] = (small_convnext, (3, 32, 32), "image", 13)
    ci["swin_small_32"] = (small_swin, (3, 32, 32), "image", 17)
    ci["text_transformer"] = (TextTransformer, (12,), "ids", 17)
    ci["decoder"] = (Decoder, (3, 16, 16), "image", 13)
    return ci


def classifiers():
    """Every classifier of torchvision 0.14: name -> input size."""
    return {n: 299 if n == "inception_v3" else 224 for n in torchvision.models.list_models(module=torchvision.models)}


# ---- export ------------------------------------------------------------------------------

def export(name, make, shape, kind, opset, out, batch, seed=1):
    torch.manual_seed(seed)
    model = randomise(make(), seed)
    g = torch.Generator().manual_seed(seed + 1000)
    if kind == "ids":
        x = torch.randint(0, 50, (batch,) + shape, generator=g)
    else:
        x = torch.randn((batch,) + shape, generator=g)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(out, name + ".onnx")
    f = io.BytesIO()
    torch.onnx.export(model, x, f, opset_version=opset, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, do_constant_folding=True)
    data = f.getvalue()
    with open(path, "wb") as fh:
        fh.write(data)
    np.save(os.path.join(out, name + ".input.npy"), x.numpy().astype(np.int64 if kind == "ids" else np.float32))
    np.save(os.path.join(out, name + ".output.npy"), y.numpy().astype(np.float32))
    ops = sorted({n.op_type for n in onnx.load_from_string(data).graph.node})
    return {"name": name, "opset": opset, "input": kind, "bytes": len(data), "operators": ops,
            "parameters": int(sum(p.numel() for p in model.parameters()))}


def cmd_export(args):
    os.makedirs(args.out, exist_ok=True)
    entries = catalogue(args.size)
    if args.set == "all":
        entries = collections.OrderedDict((n, (lambda n=n: torchvision.models.get_model(n), (3, s, s), "image", 17))
                                          for n, s in classifiers().items())
    elif args.set != "ci":
        wanted = args.set.split(",")
        pool = dict(catalogue(args.size))
        for n, s in classifiers().items():
            pool.setdefault(n, (lambda n=n: torchvision.models.get_model(n), (3, s, s), "image", 17))
        entries = collections.OrderedDict((n, pool[n]) for n in wanted)
    manifest = []
    for name, (make, shape, kind, opset) in entries.items():
        t = time.time()
        manifest.append(export(name, make, shape, kind, opset, args.out, args.batch))
        print("exported %s (%.1f s)" % (name, time.time() - t), file=sys.stderr)
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)


def cmd_table(args):
    """Every classifier, one at a time: export, import and run with tensorquant-study, compare."""
    os.makedirs(args.out, exist_ok=True)
    rows = []
    sizes = {}
    for name in classifiers():  # smallest first, so that a partial run covers most families
        sizes[name] = sum(p.numel() for p in torchvision.models.get_model(name).parameters())
    skip = set(args.skip.split(",")) if args.skip else set()
    for name, size in sorted(classifiers().items(), key=lambda e: sizes[e[0]]):
        if name in skip:
            continue
        make = lambda n=name: torchvision.models.get_model(n)
        params = sizes[name]
        if params * 4 > 1.9e9:
            rows.append((name, "-", "not exported: %d M parameters exceed protobuf's 2 GiB" % (params / 1e6), "", ""))
            continue
        try:
            info = export(name, make, (3, size, size), "image", 17, args.out, args.batch)
        except Exception as e:  # torch.onnx cannot export it
            rows.append((name, "-", "torch.onnx cannot export it: " + str(e).split("\n")[0][:90], "", ""))
            continue
        onnx_path = os.path.join(args.out, name + ".onnx")
        got_path = os.path.join(args.out, name + ".got.npy")
        # the processor time of a process that only loads the model (wall time would count a busy machine)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        listed = subprocess.run([args.study, "layers", "--list", "--model", onnx_path], capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if listed.returncode:
            rows.append((name, " ".join(info["operators"]), "refused: " + listed.stderr.strip().split(": ", 2)[-1][:120], "", ""))
        else:
            run = subprocess.run([args.study, "predict", "--model", onnx_path, "--input",
                                  os.path.join(args.out, name + ".input.npy"), "--output", got_path],
                                 capture_output=True, text=True)
            if run.returncode:
                rows.append((name, " ".join(info["operators"]), "fails to run: " + run.stderr.strip()[-120:], "", ""))
            else:
                want = np.load(os.path.join(args.out, name + ".output.npy"))
                got = np.load(got_path)
                err = float(np.abs(got - want).max() / np.abs(want).max())
                rows.append((name, " ".join(info["operators"]), "yes", "%.1e" % err, "%.2f s" % load))
        for ext in (".onnx", ".input.npy", ".output.npy", ".got.npy"):
            p = os.path.join(args.out, name + ext)
            if os.path.exists(p):
                os.remove(p)
        print("| " + " | ".join(rows[-1]) + " |", flush=True)
    print("\n| model | operators | imports | max error / max logit | load (processor time) |")
    print("| --- | --- | --- | ---: | ---: |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export")
    e.add_argument("out")
    e.add_argument("--set", default="ci")
    e.add_argument("--size", type=int, default=64)
    e.add_argument("--batch", type=int, default=2)
    t = sub.add_parser("table")
    t.add_argument("out")
    t.add_argument("study")
    t.add_argument("--batch", type=int, default=2)
    t.add_argument("--skip", default="", help="models not to run (NAME,...)")
    args = p.parse_args()
    torch.set_num_threads(2)
    # (not under no_grad: there attention takes a fast path that torch.onnx cannot export)
    {"export": cmd_export, "table": cmd_table}[args.command](args)


if __name__ == "__main__":
    main()
