//! Every layer type in both layouts: tensor names, storage shapes and fans as PyTorch
//! and Keras 3 create them (facts: shared/reference/LAYERS.md), and input-size inference.

use crate::common::{expect, model, names_shapes};
use specc::init::{FanMode, Flatten, Init, VsDistribution};
use specc::{DType, Fans, Role};

fn one(layout: &str, input: &str, layer: &str) -> specc::Model {
    model(
        "t.yaml",
        &format!("name: t\nlayout: {layout}\ninput: {input}\nlayers:\n  - {layer}\n"),
    )
}

fn fans(m: &specc::Model, name: &str) -> (u64, u64) {
    let t = m
        .tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    (t.fans.fan_in, t.fans.fan_out)
}

#[test]
fn dense_pytorch_is_out_in_with_linear_defaults() {
    let m = one("pytorch", "[20]", "{name: fc, type: dense, units: 30}");
    assert_eq!(
        names_shapes(&m),
        expect(&[("fc.weight", &[30, 20]), ("fc.bias", &[30])])
    );
    assert_eq!(fans(&m, "fc.weight"), (20, 30));
    // torch: kaiming_uniform(a=sqrt(5)) on the weight, U(±1/sqrt(in)) on the bias.
    assert_eq!(
        m.tensors[0].init,
        Init::VarianceScaling {
            scale: 1.0 / 3.0,
            mode: FanMode::FanIn,
            distribution: VsDistribution::Uniform
        }
    );
    let b = 1.0 / 20f64.sqrt();
    assert_eq!(m.tensors[1].init, Init::Uniform { low: -b, high: b });
}

#[test]
fn dense_keras_is_in_out_with_glorot_and_zeros() {
    let m = one("keras", "[20]", "{name: fc, type: dense, units: 30}");
    assert_eq!(
        names_shapes(&m),
        expect(&[("fc/kernel", &[20, 30]), ("fc/bias", &[30])])
    );
    assert_eq!(fans(&m, "fc/kernel"), (20, 30));
    assert_eq!(
        m.tensors[0].init,
        Init::VarianceScaling {
            scale: 1.0,
            mode: FanMode::FanAvg,
            distribution: VsDistribution::Uniform
        }
    );
    assert_eq!(m.tensors[1].init, Init::ZEROS);
}

#[test]
fn dense_in_out_under_pytorch_is_hf_conv1d() {
    let m = one(
        "pytorch",
        "[8]",
        "{name: c_attn, type: dense, units: 24, kernel_order: in_out}",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[("c_attn.weight", &[8, 24]), ("c_attn.bias", &[24])])
    );
    // Fans follow the meaning, not the storage order.
    assert_eq!(fans(&m, "c_attn.weight"), (8, 24));
    assert_eq!(
        m.tensors[0].init,
        Init::Normal {
            mean: 0.0,
            std: 0.02
        }
    );
    assert_eq!(m.tensors[1].init, Init::ZEROS);
}

#[test]
fn dense_without_bias_has_one_tensor() {
    let m = one(
        "pytorch",
        "[4]",
        "{name: fc, type: dense, units: 2, use_bias: false}",
    );
    assert_eq!(names_shapes(&m), expect(&[("fc.weight", &[2, 4])]));
}

#[test]
fn conv2d_both_layouts_with_groups() {
    let m = one(
        "pytorch",
        "[8, 32, 32]",
        "{name: c, type: conv2d, filters: 16, kernel_size: [3, 5], groups: 2}",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[("c.weight", &[16, 4, 3, 5]), ("c.bias", &[16])])
    );
    // fan_in = in/g * rf, fan_out = out * rf (never divided by groups)
    assert_eq!(fans(&m, "c.weight"), (4 * 15, 16 * 15));
    let b = 1.0 / 60f64.sqrt();
    assert_eq!(m.tensors[1].init, Init::Uniform { low: -b, high: b });

    let k = one(
        "keras",
        "[32, 32, 8]",
        "{name: c, type: conv2d, filters: 16, kernel_size: [3, 5], groups: 2}",
    );
    assert_eq!(
        names_shapes(&k),
        expect(&[("c/kernel", &[3, 5, 4, 16]), ("c/bias", &[16])])
    );
    assert_eq!(fans(&k, "c/kernel"), (60, 240));
}

#[test]
fn conv1d_both_layouts() {
    let m = one(
        "pytorch",
        "[3, 100]",
        "{name: c, type: conv1d, filters: 6, kernel_size: 7}",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[("c.weight", &[6, 3, 7]), ("c.bias", &[6])])
    );
    let k = one(
        "keras",
        "[100, 3]",
        "{name: c, type: conv1d, filters: 6, kernel_size: 7}",
    );
    assert_eq!(
        names_shapes(&k),
        expect(&[("c/kernel", &[7, 3, 6]), ("c/bias", &[6])])
    );
    assert_eq!(fans(&k, "c/kernel"), (21, 42));
}

#[test]
fn embedding_both_layouts() {
    let m = one(
        "pytorch",
        "[16]",
        "{name: wte, type: embedding, num_embeddings: 100, embedding_dim: 8}",
    );
    assert_eq!(names_shapes(&m), expect(&[("wte.weight", &[100, 8])]));
    assert_eq!(
        m.tensors[0].init,
        Init::Normal {
            mean: 0.0,
            std: 1.0
        }
    );
    let k = one(
        "keras",
        "[16]",
        "{name: wte, type: embedding, num_embeddings: 100, embedding_dim: 8}",
    );
    assert_eq!(names_shapes(&k), expect(&[("wte/embeddings", &[100, 8])]));
    assert_eq!(
        k.tensors[0].init,
        Init::Uniform {
            low: -0.05,
            high: 0.05
        }
    );
}

#[test]
fn norms_both_layouts() {
    let m = one("pytorch", "[10, 64]", "{name: ln, type: layer_norm}");
    assert_eq!(
        names_shapes(&m),
        expect(&[("ln.weight", &[64]), ("ln.bias", &[64])])
    );
    assert_eq!(
        (m.tensors[0].init.clone(), m.tensors[1].init.clone()),
        (Init::ONES, Init::ZEROS)
    );
    let k = one("keras", "[10, 64]", "{name: ln, type: layer_norm}");
    assert_eq!(
        names_shapes(&k),
        expect(&[("ln/gamma", &[64]), ("ln/beta", &[64])])
    );
    let m = one(
        "pytorch",
        "[10, 64]",
        "{name: ln, type: layer_norm, normalized_shape: [10, 64], use_bias: false}",
    );
    assert_eq!(names_shapes(&m), expect(&[("ln.weight", &[10, 64])]));
    let m = one(
        "pytorch",
        "[64]",
        "{name: ln, type: layer_norm, elementwise_affine: false}",
    );
    assert!(m.tensors.is_empty());

    let m = one("pytorch", "[64]", "{name: n, type: rms_norm}");
    assert_eq!(names_shapes(&m), expect(&[("n.weight", &[64])]));
    let k = one("keras", "[64]", "{name: n, type: rms_norm}");
    assert_eq!(names_shapes(&k), expect(&[("n/scale", &[64])]));
}

#[test]
fn batch_norm_has_the_frameworks_buffers() {
    let m = one("pytorch", "[16, 8, 8]", "{name: bn, type: batch_norm}");
    assert_eq!(
        names_shapes(&m),
        expect(&[
            ("bn.weight", &[16]),
            ("bn.bias", &[16]),
            ("bn.running_mean", &[16]),
            ("bn.running_var", &[16]),
            ("bn.num_batches_tracked", &[]),
        ])
    );
    assert_eq!(m.tensors[4].dtype, DType::I64);
    assert_eq!(m.tensors[3].init, Init::ONES);
    let k = one("keras", "[8, 8, 16]", "{name: bn, type: batch_norm}");
    assert_eq!(
        names_shapes(&k),
        expect(&[
            ("bn/gamma", &[16]),
            ("bn/beta", &[16]),
            ("bn/moving_mean", &[16]),
            ("bn/moving_variance", &[16])
        ])
    );
}

#[test]
fn lstm_pytorch_stacked_bidirectional() {
    let m = one(
        "pytorch",
        "[5, 10]",
        "{name: rnn, type: lstm, units: 20, num_layers: 2, bidirectional: true}",
    );
    let mut want = Vec::new();
    for l in 0..2 {
        let inp = if l == 0 { 10 } else { 40 };
        for sfx in ["", "_reverse"] {
            want.push((format!("rnn.weight_ih_l{l}{sfx}"), vec![80, inp]));
            want.push((format!("rnn.weight_hh_l{l}{sfx}"), vec![80, 20]));
            want.push((format!("rnn.bias_ih_l{l}{sfx}"), vec![80]));
            want.push((format!("rnn.bias_hh_l{l}{sfx}"), vec![80]));
        }
    }
    assert_eq!(names_shapes(&m), want);
    let b = 1.0 / 20f64.sqrt();
    assert!(m
        .tensors
        .iter()
        .all(|t| t.init == Init::Uniform { low: -b, high: b }));
    assert_eq!(m.tensors[1].role, Role::RecurrentKernel);
    // the next layer sees 2 * units
    let m = model(
        "t.yaml",
        "name: t\ninput: [5, 10]\nlayers:\n  - {type: lstm, units: 20, bidirectional: true}\n  - {name: fc, type: dense, units: 3}\n",
    );
    assert_eq!(m.tensors.last().unwrap().name, "fc.bias");
    assert_eq!(m.tensors[m.tensors.len() - 2].shape, vec![3, 40]);
}

#[test]
fn gru_pytorch_has_three_gates() {
    let m = one("pytorch", "[7]", "{name: g, type: gru, units: 4}");
    assert_eq!(
        names_shapes(&m),
        expect(&[
            ("g.weight_ih_l0", &[12, 7]),
            ("g.weight_hh_l0", &[12, 4]),
            ("g.bias_ih_l0", &[12]),
            ("g.bias_hh_l0", &[12]),
        ])
    );
}

#[test]
fn recurrent_keras_cells_and_defaults() {
    let k = one("keras", "[5, 10]", "{name: enc, type: lstm, units: 2}");
    assert_eq!(
        names_shapes(&k),
        expect(&[
            ("enc/lstm_cell/kernel", &[10, 8]),
            ("enc/lstm_cell/recurrent_kernel", &[2, 8]),
            ("enc/lstm_cell/bias", &[8]),
        ])
    );
    assert_eq!(
        k.tensors[1].init,
        Init::Orthogonal {
            gain: 1.0,
            flatten: Flatten::Leading
        }
    );
    assert_eq!(k.tensors[2].init, Init::UnitForgetBias { units: 2 });
    assert_eq!(fans(&k, "enc/lstm_cell/kernel"), (10, 8));

    let g = one("keras", "[5, 10]", "{name: enc, type: gru, units: 3}");
    assert_eq!(
        names_shapes(&g),
        expect(&[
            ("enc/gru_cell/kernel", &[10, 9]),
            ("enc/gru_cell/recurrent_kernel", &[3, 9]),
            ("enc/gru_cell/bias", &[2, 9]),
        ])
    );

    let b = one(
        "keras",
        "[5, 10]",
        "{name: enc, type: lstm, units: 2, bidirectional: true, num_layers: 2}",
    );
    let names: Vec<String> = b.tensors.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names[0], "enc/forward_lstm/lstm_cell/kernel");
    assert_eq!(names[3], "enc/backward_lstm/lstm_cell/kernel");
    // Each wrapped LSTM takes an automatic name of its own (reference/LAYERS2.md §2.5).
    assert_eq!(names[6], "enc_1/forward_lstm_1/lstm_cell/kernel");
    assert_eq!(b.tensors[6].shape, vec![4, 8]);
}

#[test]
fn attention_both_layouts() {
    let m = one(
        "pytorch",
        "[10, 64]",
        "{name: mha, type: multi_head_attention, num_heads: 8}",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[
            ("mha.in_proj_weight", &[192, 64]),
            ("mha.in_proj_bias", &[192]),
            ("mha.out_proj.weight", &[64, 64]),
            ("mha.out_proj.bias", &[64]),
        ])
    );
    // torch: xavier_uniform_ over the fused [3E, E]: bound sqrt(6 / 4E)
    let b = (6.0 / 256.0f64).sqrt();
    assert_eq!(m.tensors[0].init, Init::Uniform { low: -b, high: b });
    assert_eq!(m.tensors[1].init, Init::ZEROS);
    assert_eq!(m.tensors[3].init, Init::ZEROS);

    let k = one(
        "keras",
        "[10, 64]",
        "{name: mha, type: multi_head_attention, num_heads: 8}",
    );
    assert_eq!(
        names_shapes(&k),
        expect(&[
            ("mha/query/kernel", &[64, 8, 8]),
            ("mha/query/bias", &[8, 8]),
            ("mha/key/kernel", &[64, 8, 8]),
            ("mha/key/bias", &[8, 8]),
            ("mha/value/kernel", &[64, 8, 8]),
            ("mha/value/bias", &[8, 8]),
            ("mha/attention_output/kernel", &[8, 8, 64]),
            ("mha/attention_output/bias", &[64]),
        ])
    );
    // Keras >= 3.15: query kernel [E, H, D] has fan_in E, fan_out H*D.
    assert_eq!(fans(&k, "mha/query/kernel"), (64, 64));
}

#[test]
fn pooling_and_flatten_infer_dense_input_in_both_orders() {
    // torchvision ResNet stem: 224 -> conv7 s2 p3 -> 112 -> maxpool3 s2 p1 -> 56
    let m = model(
        "t.yaml",
        "name: t\ninput: [3, 224, 224]\nlayers:\n  - {name: conv1, type: conv2d, filters: 64, kernel_size: 7, strides: 2, padding: 3, use_bias: false}\n  - {type: max_pool2d, pool_size: 3, strides: 2, padding: 1}\n  - {type: flatten}\n  - {name: fc, type: dense, units: 10}\n",
    );
    assert_eq!(m.tensors[1].shape, vec![10, 64 * 56 * 56]);
    let k = model(
        "t.toml",
        "name = 't'\nlayout = 'keras'\ninput = [28, 28, 1]\n[[layers]]\ntype = 'conv2d'\nfilters = 32\nkernel_size = 3\npadding = 'same'\nstrides = 2\n[[layers]]\ntype = 'avg_pool2d'\npool_size = 2\n[[layers]]\ntype = 'flatten'\n[[layers]]\ntype = 'dense'\nunits = 10\n",
    );
    // same, stride 2: 28 -> 14; pool 2 -> 7; 7*7*32
    assert_eq!(k.tensors[2].name, "dense/kernel");
    assert_eq!(k.tensors[2].shape, vec![7 * 7 * 32, 10]);
    // unnamed keras layers are named by class, counted per class
    assert_eq!(k.tensors[0].name, "conv2d/kernel");
}

#[test]
fn global_pool_keeps_channels() {
    let m = model(
        "t.yaml",
        "name: t\nlayout: keras\ninput: [8, 8, 3]\nlayers:\n  - {type: conv2d, filters: 5, kernel_size: 1}\n  - {type: global_avg_pool2d}\n  - {type: dense, units: 2}\n  - {type: dense, units: 2}\n",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[
            ("conv2d/kernel", &[1, 1, 3, 5]),
            ("conv2d/bias", &[5]),
            ("dense/kernel", &[5, 2]),
            ("dense/bias", &[2]),
            ("dense_1/kernel", &[2, 2]),
            ("dense_1/bias", &[2]),
        ])
    );
}

#[test]
fn sequential_repeat_residual_and_index_names() {
    let m = model(
        "t.yaml",
        "name: t\ninput: [16]\nlayers:\n  - name: h\n    type: sequential\n    repeat: 2\n    residual: true\n    layers:\n      - {type: dense, units: 32}\n      - {type: activation, function: relu}\n      - {type: dense, units: 16}\n  - {type: dense, units: 4}\n",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[
            ("h.0.0.weight", &[32, 16]),
            ("h.0.0.bias", &[32]),
            ("h.0.2.weight", &[16, 32]),
            ("h.0.2.bias", &[16]),
            ("h.1.0.weight", &[32, 16]),
            ("h.1.0.bias", &[32]),
            ("h.1.2.weight", &[16, 32]),
            ("h.1.2.bias", &[16]),
            ("1.weight", &[4, 16]),
            ("1.bias", &[4]),
        ])
    );
    let m = model(
        "t.yaml",
        "name: t\nlayout: keras\ninput: [16]\nlayers:\n  - name: block\n    type: sequential\n    layers:\n      - {name: fc, type: dense, units: 8}\n",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[("block/fc/kernel", &[16, 8]), ("block/fc/bias", &[8])])
    );
}

#[test]
fn explicit_sizes_win_and_start_branches() {
    let m = model(
        "t.yaml",
        "name: t\nlayers:\n  - {name: a, type: dense, units: 8, in_features: 3}\n  - {name: b, type: dense, units: 4, in_features: 5}\n",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[
            ("a.weight", &[8, 3]),
            ("a.bias", &[8]),
            ("b.weight", &[4, 5]),
            ("b.bias", &[4])
        ])
    );
}

#[test]
fn tie_stores_the_embedding_once() {
    let m = model(
        "t.yaml",
        "name: t\ninput: [4]\nlayers:\n  - {name: wte, type: embedding, num_embeddings: 50, embedding_dim: 8}\n  - {name: lm_head, type: dense, units: 50, use_bias: false, tie: wte}\n",
    );
    assert_eq!(names_shapes(&m), expect(&[("wte.weight", &[50, 8])]));
    assert_eq!(m.ties.len(), 1);
    assert_eq!(
        (m.ties[0].name.as_str(), m.ties[0].target.as_str()),
        ("lm_head.weight", "wte.weight")
    );
}

#[test]
fn dtype_per_layer_and_defaults_section() {
    let m = model(
        "t.yaml",
        "name: t\ndtype: bf16\ninput: [4]\ndefaults: {kernel_initializer: he_normal, bias_initializer: {name: constant, value: 0.1}}\nlayers:\n  - {name: a, type: dense, units: 8}\n  - {name: b, type: dense, units: 2, dtype: f32, kernel_initializer: {name: normal, std: 0.01, seed: 9}}\n",
    );
    assert_eq!(m.tensors[0].dtype, DType::BF16);
    assert_eq!(m.tensors[2].dtype, DType::F32);
    assert_eq!(m.tensors[0].choice.written, "he_normal");
    assert_eq!(
        m.tensors[0].choice.source,
        specc::model::InitSource::Defaults
    );
    assert_eq!(m.tensors[1].init, Init::Constant { value: 0.1 });
    assert_eq!(m.tensors[2].seed, 9);
    assert_eq!(m.tensors[0].seed, 0);
    assert_eq!(m.total_params(), 8 * 4 + 8 + 2 * 8 + 2);
    assert_eq!(m.total_bytes(), (8 * 4 + 8) * 2 + (2 * 8 + 2) * 4);
}

#[test]
fn yaml_anchors_and_merge_keys_reuse_layer_blocks() {
    let m = model(
        "t.yaml",
        "name: t\ninput: [4]\nx-block: &fc {type: dense, units: 8, kernel_initializer: glorot_uniform}\nlayers:\n  - {<<: *fc, name: a}\n  - {<<: *fc, name: b, units: 2}\n",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[
            ("a.weight", &[8, 4]),
            ("a.bias", &[8]),
            ("b.weight", &[2, 8]),
            ("b.bias", &[2])
        ])
    );
}

#[test]
fn fans_are_the_same_in_both_layouts() {
    for layer in [
        "{name: x, type: dense, units: 7, in_features: 5}",
        "{name: x, type: conv2d, filters: 7, kernel_size: 3}",
        "{name: x, type: embedding, num_embeddings: 9, embedding_dim: 7}",
    ] {
        let p = one("pytorch", "[5, 6, 6]", layer);
        let k = one("keras", "[6, 6, 5]", layer);
        let pf: Vec<Fans> = p.tensors.iter().map(|t| t.fans).collect();
        let kf: Vec<Fans> = k.tensors.iter().map(|t| t.fans).collect();
        assert_eq!(pf, kf, "{layer}");
    }
}

#[test]
fn structured_initializers_on_allowed_shapes() {
    let m = one(
        "pytorch",
        "[4, 8, 8]",
        "{name: c, type: conv2d, filters: 4, kernel_size: 3, kernel_initializer: dirac}",
    );
    assert_eq!(m.tensors[0].init, Init::Dirac { groups: 1 });
    let m = one(
        "pytorch",
        "[4]",
        "{name: fc, type: dense, units: 4, kernel_initializer: eye}",
    );
    assert_eq!(m.tensors[0].init, Init::Identity { gain: 1.0 });
    let m = one(
        "pytorch",
        "[4, 8, 8]",
        "{name: c, type: conv2d, filters: 4, kernel_size: 3, kernel_initializer: orthogonal}",
    );
    assert_eq!(
        m.tensors[0].init,
        Init::Orthogonal {
            gain: 1.0,
            flatten: Flatten::Trailing
        }
    );
}
