"""specc's wave-2 layer types in layout keras against real Keras 3 layers (torch backend):
variable paths, shapes, dtypes and order; loading by path and a forward pass; the fans
Keras computes; the default initializers' values; the errors of fields Keras lacks."""

import contextlib
import json
import math
import os
import subprocess

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers as L  # noqa: E402
from keras.src.initializers import random_initializers  # noqa: E402
from keras.src.layers.layer import Layer  # noqa: E402
from safetensors.numpy import load_file as np_load  # noqa: E402

from conftest import HERE_SPECS, build, ks_2samp, specc_bin, summary  # noqa: E402

SPEC = HERE_SPECS / "keras_layers2.yaml"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras' numpy 2 notice
DTYPES = {"f32": "float32", "int32": "int32", "i32": "int32", "f64": "float64", "f16": "float16"}


def keras_model():
    """The Keras functional model that specs/keras_layers2.yaml describes, in a fresh
    session so that automatic names start from zero."""
    keras.backend.clear_session()
    inp = keras.Input((6, 6, 6, 4))
    x = L.Conv3D(6, 3, groups=2)(inp)
    x = L.Conv3DTranspose(5, 3, strides=2, padding="same")(x)
    x = L.MaxPooling3D(2)(x)
    x = L.AveragePooling3D(2, strides=(1, 2, 1))(x)
    x = L.UpSampling3D((2, 1, 3))(x)
    x = L.Permute((4, 1, 2, 3))(x)  # specc dims [3, 0, 1, 2]
    x = L.Conv3D(4, (4, 1, 2))(x)
    x = L.Flatten()(x)
    x = L.Dense(96)(x)
    x = L.Reshape((2, 3, 4, 4))(x)
    x = L.GlobalAveragePooling3D()(x)
    x = L.Dense(240)(x)

    x = L.Reshape((30, 8))(x)
    x = L.Conv1DTranspose(4, 3, strides=2)(x)
    x = L.MaxPooling1D(3, strides=2)(x)
    x = L.AveragePooling1D(4, strides=3, padding="same")(x)
    x = L.UpSampling1D(3)(x)
    x = L.Flatten()(x)
    x = L.Dense(28)(x)
    x = L.Reshape((14, 2))(x)
    x = L.AdaptiveAveragePooling1D(5)(x)
    x = L.Flatten()(x)
    x = L.Dense(24)(x)
    x = L.Reshape((6, 4))(x)
    x = L.GlobalMaxPooling1D()(x)
    x = L.Dense(48)(x)

    x = L.Reshape((4, 4, 3))(x)
    x = L.Conv2DTranspose(6, 3, strides=2)(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2)(x)
    x = L.SeparableConv2D(6, 3, depth_multiplier=2)(x)
    x = L.UpSampling2D((2, 3))(x)
    x = L.GroupNormalization(groups=3)(x)
    x = L.GroupNormalization(groups=-1)(x)
    x = L.GroupNormalization(groups=-1, name="inorm")(x)  # specc instance_norm, affine
    x = L.GroupNormalization(groups=-1, center=False, scale=False)(x)  # no variables
    x = L.GroupNormalization(groups=-1)(x)
    x = L.PReLU(shared_axes=[1, 2])(x)
    x = L.PReLU()(x)
    x = L.AdaptiveAveragePooling2D((4, 5))(x)
    x = L.PReLU(shared_axes=[1])(x)
    x = L.PReLU(shared_axes=[2])(x)
    x = L.GlobalMaxPooling2D()(x)
    x = L.Dense(20)(x)

    x = L.Reshape((5, 4))(x)
    x = L.SimpleRNN(6, return_sequences=True)(x)
    x = L.Bidirectional(L.LSTM(6, return_sequences=True))(x)
    x = L.Bidirectional(L.LSTM(6, return_sequences=True))(x)
    x = L.LSTM(3, return_sequences=True)(x)
    x = L.Bidirectional(L.LSTM(6, return_sequences=True), name="bi")(x)
    x = L.Bidirectional(L.GRU(2, return_sequences=True))(x)
    key = keras.Input((5, 10))
    value = keras.Input((5, 6))
    x = L.MultiHeadAttention(2, 3, value_dim=5, output_shape=7)(x, value, key=key)
    x = L.Normalization(axis=-1)(x)
    x = L.Normalization(axis=[1, 2])(x)
    x = L.Normalization(axis=None)(x)
    x = L.GlobalAveragePooling1D()(x)
    x = L.Dense(3)(x)
    return keras.Model([inp, key, value], x)


def keras_vars(model):
    return [(v.path, tuple(v.shape), str(v.dtype), bool(v.trainable)) for v in model.weights]


def specc_vars(spec):
    return [(t["name"], tuple(t["shape"]), DTYPES.get(t["dtype"], t["dtype"]), bool(t["trainable"])) for t in summary(spec)["tensors"]]


@contextlib.contextmanager
def recording_fans():
    """{variable path: (fan_in, fan_out)} for every variable whose initializer asked
    keras' compute_fans, with the axes Keras passed (EinsumDense's included)."""
    record, last = {}, []
    orig_fans, orig_add = random_initializers.compute_fans, Layer.add_weight

    def fans(shape, input_axes=None, output_axes=None):
        r = orig_fans(shape, input_axes, output_axes)
        last.append(r)
        return r

    def add_weight(self, *args, **kwargs):
        last.clear()
        v = orig_add(self, *args, **kwargs)
        if last:
            record[v.path] = last[-1]
        return v

    random_initializers.compute_fans, Layer.add_weight = fans, add_weight
    try:
        yield record
    finally:
        random_initializers.compute_fans, Layer.add_weight = orig_fans, orig_add


def keras_values(model):
    return {v.path: np.asarray(keras.ops.convert_to_numpy(v)) for v in model.weights}


# 1. names, shapes, dtypes, order


def test_paths_shapes_dtypes_and_order_match_keras():
    want = keras_vars(keras_model())
    got = specc_vars(SPEC)
    assert [w[0] for w in got] == [w[0] for w in want]
    assert got == want


def test_automatic_names_follow_keras_counters():
    # LAYERS2.md §2.5: the wrapped layer takes the counter, so the plain LSTM after two
    # wrappers is lstm_2 and the user-named wrapper holds forward_lstm_3.
    names = [t[0] for t in specc_vars(SPEC)]
    for n in [
        "simple_rnn/simple_rnn_cell/kernel",
        "bidirectional/forward_lstm/lstm_cell/kernel",
        "bidirectional/backward_lstm/lstm_cell/bias",
        "bidirectional_1/forward_lstm_1/lstm_cell/recurrent_kernel",
        "bidirectional_1/backward_lstm_1/lstm_cell/kernel",
        "lstm_2/lstm_cell/kernel",
        "bi/forward_lstm_3/lstm_cell/kernel",
        "bi/backward_lstm_3/lstm_cell/kernel",
        "bidirectional_2/forward_gru/gru_cell/bias",
        "group_normalization_3/gamma",  # a non-affine instance_norm took group_normalization_2
    ]:
        assert n in names, n
    assert not any(n.startswith("group_normalization_2/") for n in names)


def test_shape_only_layers_give_keras_output_shapes():
    # The layers after the shape-only ones show Keras' output shapes: a dense after a
    # flatten or a global pool, a convolution's input channels, a PReLU's slopes.
    model = keras_model()
    want = {
        "conv3d_1/kernel": (4, 1, 2, 9, 4),  # upsample [6, 2, 9, 5] permuted to [5, 6, 2, 9]
        "dense/kernel": (48, 96),  # [2, 6, 1, 4]: pools, upsample and permute in order
        "dense_1/kernel": (4, 240),  # global_avg_pool3d
        "dense_2/kernel": (120, 28),  # conv1d_transpose 61, max_pool1d 30, avg_pool1d same 10, upsample 30
        "dense_3/kernel": (10, 24),  # adaptive_avg_pool1d 14 -> 5
        "dense_4/kernel": (4, 48),  # global_max_pool1d
        "p_re_lu/alpha": (1, 1, 6),
        "p_re_lu_1/alpha": (10, 15, 6),  # conv_transpose2d 9, depthwise 7, separable 5, upsample (2, 3)
        "p_re_lu_2/alpha": (1, 5, 6),  # adaptive_avg_pool2d (4, 5)
        "p_re_lu_3/alpha": (4, 1, 6),
        "dense_5/kernel": (6, 20),  # global_max_pool2d
        "normalization_1/mean": (5, 7),  # multi-head attention's output_dim
    }
    assert {v.path: tuple(v.shape) for v in model.weights if v.path in want} == want
    assert {n: s for n, s, _, _ in specc_vars(SPEC) if n in want} == want
    assert tuple(model.output.shape) == (None, 3)


@pytest.mark.parametrize(
    "input,layers,make",
    [
        ([7, 7, 3], [{"type": "zero_padding2d", "padding": [[0, 1], [0, 1]]}], lambda: L.ZeroPadding2D(((0, 1), (0, 1)))),
        ([7, 7, 3], [{"type": "zero_padding2d"}], lambda: L.ZeroPadding2D()),
        ([7, 5, 3], [{"type": "zero_padding2d", "padding": [2, 1]}], lambda: L.ZeroPadding2D((2, 1))),
        ([7, 3], [{"type": "zero_padding1d", "padding": [1, 3]}], lambda: L.ZeroPadding1D((1, 3))),
        ([4, 5, 6, 2], [{"type": "zero_padding3d", "padding": [[1, 0], [0, 2], [1, 1]]}], lambda: L.ZeroPadding3D(((1, 0), (0, 2), (1, 1)))),
        ([6, 4], [{"type": "lstm", "units": 3}], lambda: L.LSTM(3)),
        ([6, 4], [{"type": "gru", "units": 3, "return_sequences": True}], lambda: L.GRU(3, return_sequences=True)),
        ([6, 4], [{"type": "rnn", "units": 3, "bidirectional": True}], lambda: L.Bidirectional(L.SimpleRNN(3))),
    ],
    ids=["pad2d_pairs", "pad2d_default", "pad2d_per_axis", "pad1d", "pad3d", "lstm_last", "gru_sequence", "birnn_last"],
)
def test_padding_and_return_sequences_give_keras_shapes(tmp_path, input, layers, make):
    # A flatten and a dense after the layer: the dense kernel's rows are the layer's
    # output size, as Keras builds it.
    keras.backend.clear_session()
    inp = keras.Input(tuple(input))
    out = L.Dense(2, name="probe")(L.Flatten()(make()(inp)))
    want = tuple(keras.Model(inp, out).get_layer("probe").kernel.shape)
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({"name": "t", "layout": "keras", "input": input, "layers": layers + [{"type": "flatten"}, {"name": "probe", "type": "dense", "units": 2}]}))
    got = {t["name"]: tuple(t["shape"]) for t in summary(spec)["tensors"]}
    assert got["probe/kernel"] == want


# 2. loading


def test_loads_by_path_strictly_and_runs(tmp_path):
    arrays = np_load(str(build(SPEC, tmp_path / "k2.safetensors")))
    keras.utils.set_random_seed(1)
    model = keras_model()
    first = keras_values(model)
    assert {v.path for v in model.weights} == set(arrays)
    for v in model.weights:
        assert arrays[v.path].dtype == np.dtype(str(v.dtype)), v.path
        assert arrays[v.path].shape == tuple(v.shape), v.path
    # Values Keras makes the same under two seeds (zeros, ones, unit_forget_bias, the
    # Normalization state) must be specc's exactly.
    keras.utils.set_random_seed(2)
    second = keras_values(keras_model())
    fixed = [p for p in first if np.array_equal(first[p], second[p])]
    assert "p_re_lu/alpha" in fixed and "normalization_1/count" in fixed
    for p in fixed:
        assert np.array_equal(arrays[p], first[p]), p
    for p in set(first) - set(fixed):
        assert np.unique(arrays[p]).size > 1, p  # random in Keras, random in specc
    for v in model.weights:
        v.assign(arrays[v.path])
    for v in model.weights:
        assert np.array_equal(np.asarray(keras.ops.convert_to_numpy(v)), arrays[v.path]), v.path
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(np.float32) for s in [(2, 6, 6, 6, 4), (2, 5, 10), (2, 5, 6)]]
    y = np.asarray(model.predict(xs, verbose=0))
    assert y.shape == (2, 3) and np.isfinite(y).all()


def test_zero_and_one_defaults_are_exact(tmp_path):
    arrays = np_load(str(build(SPEC, tmp_path / "k2.safetensors")))
    for p in ["p_re_lu/alpha", "p_re_lu_1/alpha", "p_re_lu_2/alpha", "p_re_lu_3/alpha"]:
        assert arrays[p].dtype == np.float32 and np.all(arrays[p] == 0), p
    for n in ["normalization", "normalization_1", "normalization_2"]:
        assert np.all(arrays[f"{n}/mean"] == 0) and np.all(arrays[f"{n}/variance"] == 1)
        assert arrays[f"{n}/count"].dtype == np.int32 and arrays[f"{n}/count"].shape == () and arrays[f"{n}/count"] == 0
    for n in ["group_normalization", "group_normalization_1", "inorm", "group_normalization_3"]:
        assert np.all(arrays[f"{n}/gamma"] == 1) and np.all(arrays[f"{n}/beta"] == 0)


# 3. fans and default values


def test_fans_equal_the_ones_keras_computes():
    with recording_fans() as record:
        keras_model()
    tensors = {t["name"]: t for t in summary(SPEC)["tensors"]}
    vs = {n for n, t in tensors.items() if t["initializer"]["params"].get("kind") == "variance_scaling"}
    assert vs == set(record)
    for n in record:
        assert (tensors[n]["fan_in"], tensors[n]["fan_out"]) == record[n], n
    # Depthwise and transposed kernels: Keras' fans of the stored kernel.
    storage = [
        "conv3d_transpose/kernel",
        "conv1d_transpose/kernel",
        "conv2d_transpose/kernel",
        "depthwise_conv2d/kernel",
        "separable_conv2d/depthwise_kernel",
    ]
    for n in storage:
        t = tensors[n]
        assert t["fans_from"] == "storage", n
        assert (t["fan_in"], t["fan_out"]) == random_initializers.compute_fans(t["shape"]), n


def glorot(fi, fo):
    return math.sqrt(6 / (fi + fo))


def he(fi, fo):
    return math.sqrt(6 / fi)


# (id, input, specc layer, keras layer, [(variable suffix, limit or None for orthogonal)])
CASES = [
    ("conv3d_glorot", [8, 8, 8, 64], {"type": "conv3d", "filters": 64, "kernel_size": 3, "groups": 2},
     lambda: L.Conv3D(64, 3, groups=2), [("kernel", glorot(27 * 32, 27 * 64))]),
    ("conv2d_transpose_glorot", [8, 8, 96], {"type": "conv_transpose2d", "filters": 64, "kernel_size": 3},
     lambda: L.Conv2DTranspose(64, 3), [("kernel", glorot(9 * 64, 9 * 96))]),
    ("conv2d_transpose_he", [8, 8, 128], {"type": "conv_transpose2d", "filters": 48, "kernel_size": 3, "kernel_initializer": "he_uniform"},
     lambda: L.Conv2DTranspose(48, 3, kernel_initializer="he_uniform"), [("kernel", he(48 * 9, 128 * 9))]),
    ("depthwise_glorot", [8, 8, 256], {"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 24},
     lambda: L.DepthwiseConv2D(3, depth_multiplier=24), [("kernel", glorot(256 * 9, 24 * 9))]),
    ("depthwise_he", [8, 8, 256], {"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 24, "depthwise_initializer": "he_uniform"},
     lambda: L.DepthwiseConv2D(3, depth_multiplier=24, depthwise_initializer="he_uniform"), [("kernel", he(256 * 9, 24 * 9))]),
    ("separable_glorot", [8, 8, 128], {"type": "separable_conv2d", "filters": 16, "kernel_size": 3, "depth_multiplier": 48},
     lambda: L.SeparableConv2D(16, 3, depth_multiplier=48),
     [("depthwise_kernel", glorot(128 * 9, 48 * 9)), ("pointwise_kernel", glorot(128 * 48, 16))]),
    ("simple_rnn", [4, 256], {"type": "rnn", "units": 256},
     lambda: L.SimpleRNN(256), [("simple_rnn_cell/kernel", glorot(256, 256)), ("simple_rnn_cell/recurrent_kernel", None)]),
]

@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_random_defaults_match_a_fresh_keras_layer(case, tmp_path):
    cid, shape, layer, make, checks = case
    spec = tmp_path / f"{cid}.yaml"  # JSON is YAML
    spec.write_text(json.dumps({"name": cid, "layout": "keras", "input": shape, "layers": [layer]}))
    # The entries of one orthogonal matrix are not independent: its empirical distribution
    # wanders more than an i.i.d. sample's, so those are compared over four draws a side.
    draws = 4 if any(limit is None for _, limit in checks) else 1
    ours_all, theirs_all = [], []
    for i in range(draws):
        arrays = np_load(str(build(spec, tmp_path / f"{cid}-{i}.safetensors", "--seed", str(7 + i))))
        keras.backend.clear_session()
        keras.utils.set_random_seed(i)
        k = make()
        k.build((None, *shape))
        kvals = {v.path: np.asarray(keras.ops.convert_to_numpy(v)) for v in k.weights}
        assert set(kvals) == set(arrays)
        random = set()
        for suffix, limit in checks:
            (path,) = [p for p in kvals if p.endswith("/" + suffix)]
            random.add(path)
            ours, theirs = arrays[path], kvals[path]
            assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.float32, path
            if limit is None:  # orthogonal: orthonormal rows (square here)
                q = ours.astype(np.float64)
                assert np.allclose(q @ q.T, np.eye(q.shape[0]), atol=1e-4), path
            else:
                lim32 = np.float32(limit)
                assert np.abs(theirs).max() <= lim32, path  # the formula is Keras'
                assert np.abs(ours).max() <= lim32, (path, float(np.abs(ours).max()), limit)
                assert np.abs(ours).max() >= 0.999 * limit, (path, float(np.abs(ours).max()), limit)
                assert abs(ours.std() / (limit / math.sqrt(3)) - 1) < 0.01, path
            ours_all.append((suffix, ours))
            theirs_all.append((suffix, theirs))
        # every other tensor (the biases) is a constant in Keras: equal exactly
        for path in set(kvals) - random:
            assert np.array_equal(arrays[path], kvals[path]), path
    for suffix, limit in checks:
        ours = np.concatenate([a.ravel() for s, a in ours_all if s == suffix])
        theirs = np.concatenate([a.ravel() for s, a in theirs_all if s == suffix])
        assert ours.size >= 50_000
        d, p = ks_2samp(ours, theirs)
        print(f"KS {cid}:{suffix} n={ours.size} D={d:.5f} p={p:.3g} max|w|={np.abs(ours).max():.5f} limit={limit}")
        assert p > 1e-3, (cid, suffix, d, p)


def test_explicit_he_uses_keras_fans_in_the_summary(tmp_path):
    for cid, shape, layer, _, checks in CASES:
        if not cid.endswith("_he"):
            continue
        spec = tmp_path / f"{cid}.yaml"
        spec.write_text(json.dumps({"name": cid, "layout": "keras", "input": shape, "layers": [layer]}))
        (t,) = [t for t in summary(spec)["tensors"] if t["name"].endswith("/kernel")]
        assert t["fans_from"] == "storage"
        assert (t["fan_in"], t["fan_out"]) == random_initializers.compute_fans(t["shape"])
        assert math.isclose(he(t["fan_in"], t["fan_out"]), checks[0][1])


# 4. errors


def check_json(text, tmp_path):
    spec = tmp_path / "e.yaml"
    spec.write_text(text)
    out = subprocess.run([specc_bin(), "check", "--format", "json", str(spec)], capture_output=True, text=True)
    return out.returncode, json.loads(out.stdout)["diagnostics"]


ERRORS = [
    ("conv_transpose_groups_keras", "keras", [8, 8, 4], "{type: conv_transpose2d, filters: 6, kernel_size: 3, groups: 2}", None),
    ("add_bias_kv_keras", "keras", [5, 8], "{type: multi_head_attention, num_heads: 2, add_bias_kv: true}", None),
    ("normalization_pytorch", "pytorch", [5, 8], "{type: normalization}", "batch_norm"),
    ("instance_norm_running_stats_keras", "keras", [8, 8, 4], "{type: instance_norm, track_running_stats: true}", None),
    ("separable_conv2d_pytorch", "pytorch", [4, 8, 8], "{type: separable_conv2d, filters: 6, kernel_size: 3}", "depthwise_conv2d"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[e[0] for e in ERRORS])
def test_fields_and_layers_the_framework_lacks_are_errors(case, tmp_path):
    _, layout, shape, layer, alternative = case
    code, diags = check_json(f"name: e\nlayout: {layout}\ninput: {shape}\nlayers:\n  - {layer}\n", tmp_path)
    assert code == 1, diags
    assert [d["code"] for d in diags] == ["invalid-value"], diags
    assert diags[0]["severity"] == "error"
    if alternative:
        assert alternative in diags[0].get("help", "") + diags[0]["message"], diags
