#!/usr/bin/env python3
"""Peer benchmark: the CLIP ViT-B/32 image tower on onnxruntime (CPU).

Builds the OpenAI CLIP ViT-B/32 image encoder with `onnx.helper` and seeded
random weights (no torch, no downloads), then times it with onnxruntime's
CPUExecutionProvider so clip-lens can be compared on the same machine.

    pip install onnx onnxruntime numpy
    python3 benches/onnx_peer.py [--runs 10]
    python3 benches/onnx_peer.py --save vit-b32.onnx   # write the model only (~350 MB),
                                                       # e.g. for benches/onnx_peer_web.mjs
"""
import argparse, json, platform, statistics, sys, time

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:
    sys.exit(f"missing dependency ({e}); run: pip install onnx onnxruntime numpy")

WIDTH, HEADS, LAYERS, PATCH, IMAGE, MLP, EMBED = 768, 12, 12, 32, 224, 3072, 512
TOKENS = (IMAGE // PATCH) ** 2 + 1  # 49 patches + class token = 50
HEAD_DIM = WIDTH // HEADS  # 64


def build_model(seed=0):
    """Return an onnx.ModelProto of the image tower: pixels [B,3,224,224] -> [B,512]."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def w(name, shape, scale=0.02):  # random weight initializer
        inits.append(numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name))
        return name

    def c(name, value, dtype=np.float32):  # constant initializer
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op, inputs, out, **attrs):
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def layer_norm(x, p):
        g, b = c(p + ".g", np.ones(WIDTH)), c(p + ".b", np.zeros(WIDTH))
        return node("LayerNormalization", [x, g, b], p + ".out", axis=-1, epsilon=1e-5)

    def linear(x, p, n_in, n_out):  # x @ W + b, W stored [in, out]
        y = node("MatMul", [x, w(p + ".w", (n_in, n_out))], p + ".mm")
        return node("Add", [y, w(p + ".b", (n_out,))], p + ".out")

    # Patch embedding: Conv 768x3x32x32 stride 32, no bias -> [B,49,768].
    x = node("Conv", ["pixels", w("conv1.w", (WIDTH, 3, PATCH, PATCH))], "conv1",
             kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH])
    x = node("Reshape", [x, c("shp.patches", [0, WIDTH, TOKENS - 1], np.int64)], "patches.r")
    x = node("Transpose", [x], "patches", perm=[0, 2, 1])
    # Class token broadcast to [B,1,768], prepended; then positional embedding.
    batch = node("Shape", ["pixels"], "batch", start=0, end=1)
    cls_shape = node("Concat", [batch, c("shp.one_w", [1, WIDTH], np.int64)], "cls.shape", axis=0)
    cls = node("Expand", [w("class_embedding", (1, 1, WIDTH)), cls_shape], "cls")
    x = node("Concat", [cls, x], "tokens", axis=1)
    x = node("Add", [x, w("positional_embedding", (TOKENS, WIDTH))], "embedded")
    x = layer_norm(x, "ln_pre")

    c("shp.qkv", [0, TOKENS, 3, HEADS, HEAD_DIM], np.int64)
    c("shp.merge", [0, TOKENS, WIDTH], np.int64)
    c("scale", 1.0 / np.sqrt(HEAD_DIM))
    c("gelu.k", 1.702)
    for i in range(LAYERS):
        p = f"blk{i}"
        # Attention: packed QKV -> [3,B,H,T,D], scaled dot product, output projection.
        h = linear(layer_norm(x, p + ".ln_1"), p + ".qkv", WIDTH, 3 * WIDTH)
        h = node("Reshape", [h, "shp.qkv"], p + ".qkv.r")
        h = node("Transpose", [h], p + ".qkv.t", perm=[2, 0, 3, 1, 4])
        q, k, v = (node("Gather", [h, c(f"{p}.idx{j}", j, np.int64)], f"{p}.{n}", axis=0)
                   for j, n in enumerate("qkv"))
        q = node("Mul", [q, "scale"], p + ".q.s")
        kt = node("Transpose", [k], p + ".kt", perm=[0, 1, 3, 2])
        s = node("Softmax", [node("MatMul", [q, kt], p + ".scores")], p + ".probs", axis=-1)
        a = node("MatMul", [s, v], p + ".ctx")
        a = node("Transpose", [a], p + ".ctx.t", perm=[0, 2, 1, 3])
        a = node("Reshape", [a, "shp.merge"], p + ".ctx.r")
        x = node("Add", [x, linear(a, p + ".attn_out", WIDTH, WIDTH)], p + ".res1")
        # MLP with QuickGELU: h * sigmoid(1.702 h).
        h = linear(layer_norm(x, p + ".ln_2"), p + ".fc", WIDTH, MLP)
        sig = node("Sigmoid", [node("Mul", [h, "gelu.k"], p + ".gelu.m")], p + ".gelu.s")
        h = node("Mul", [h, sig], p + ".gelu")
        x = node("Add", [x, linear(h, p + ".proj", MLP, WIDTH)], p + ".res2")

    # ln_post on the class token, then the 768 -> 512 projection.
    x = node("Gather", [x, c("idx.cls", 0, np.int64)], "cls.out", axis=1)
    x = layer_norm(x, "ln_post")
    nodes.append(helper.make_node("MatMul", [x, w("proj", (WIDTH, EMBED))], ["embedding"], name="proj"))

    graph = helper.make_graph(
        nodes, "clip_vit_b32_image",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["B", 3, IMAGE, IMAGE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", EMBED])], inits)
    # IR 8 is opset 17's; onnx's default (its newest IR) may be too new for onnxruntime-web.
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench(model_bytes, threads, batch, runs, warmup=2):
    """Median and min ms per image over `runs` timed runs after `warmup` runs."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(1).standard_normal((batch, 3, IMAGE, IMAGE), dtype=np.float32)
    for _ in range(warmup):
        sess.run(None, {"pixels": pixels})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        (out,) = sess.run(None, {"pixels": pixels})
        times.append((time.perf_counter() - t0) * 1e3 / batch)
    assert out.shape == (batch, EMBED), f"bad output shape {out.shape}"
    assert np.isfinite(out).all(), "non-finite output"
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="timed runs per configuration")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes")
    ap.add_argument("--save", metavar="PATH", help="write the model (weights inline) to PATH and exit")
    args = ap.parse_args()

    if args.save:  # ~350 MB: under protobuf's 2 GB limit, so one self-contained file
        onnx.save(build_model(), args.save, save_as_external_data=False)
        print(f"saved {args.save}")
        return

    print(f"onnxruntime {ort.__version__} (onnx {onnx.__version__}, numpy {np.__version__})")
    print(f"cpu: {cpu_model()}")
    model_bytes = build_model().SerializeToString()
    results = []
    for threads in args.threads:
        for batch in args.batches:
            med, lo = bench(model_bytes, threads, batch, args.runs)
            print(f"onnxruntime threads={threads} batch={batch}: "
                  f"median {med:.1f} ms/image (min {lo:.1f})", flush=True)
            results.append({"threads": threads, "batch": batch, "runs": args.runs,
                            "median_ms_per_image": round(med, 2), "min_ms_per_image": round(lo, 2)})
    print(json.dumps({"peer": "onnxruntime", "version": ort.__version__, "cpu": cpu_model(),
                      "model": "clip-vit-b32-image", "results": results}))


if __name__ == "__main__":
    main()
