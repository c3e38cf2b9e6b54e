//! Blocks and topology (SPEC.md §9): naming with and without scope, shapes through every
//! merge and residual kind, and the markers the signal passes follow. Also the wave-2
//! layers' specc-side rules (fans read off storage, parameters, padding rows).

use crate::common::{expect, model, names_shapes};
use specc::model::{FansFrom, Merge, Step};

fn spec(layout: &str, input: &str, layers: &str) -> specc::Model {
    model(
        "t.yaml",
        &format!("name: t\nlayout: {layout}\ninput: {input}\nlayers:\n{layers}"),
    )
}

/// The model's predicted output shape, read from the `in_features` a final dense infers.
fn width_into_dense(layout: &str, input: &str, layers: &str) -> u64 {
    let m = spec(
        layout,
        input,
        &format!("{layers}  - {{type: flatten}}\n  - {{name: probe, type: dense, units: 1}}\n"),
    );
    let t = m
        .tensors
        .iter()
        .find(|t| t.name.starts_with("probe"))
        .unwrap();
    t.fans.fan_in
}

#[test]
fn scope_false_names_children_as_if_in_the_enclosing_list() {
    let m = spec(
        "pytorch",
        "[8]",
        "  - {type: dense, units: 8}\n  - type: sequential\n    scope: false\n    residual: add\n    layers:\n      - {type: dense, units: 8}\n      - {type: dense, units: 8}\n  - {type: dense, units: 8}\n",
    );
    let names: Vec<&str> = m.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    );
    // An unnamed parallel adds no segment either; a named one does.
    let m = spec(
        "pytorch",
        "[8]",
        "  - type: parallel\n    merge: add\n    layers:\n      - {name: a, type: dense, units: 8}\n      - {name: b, type: dense, units: 8}\n  - name: p\n    type: parallel\n    merge: add\n    layers:\n      - {type: dense, units: 8}\n      - {type: dense, units: 8}\n",
    );
    let names: Vec<&str> = m.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "a.weight",
            "a.bias",
            "b.weight",
            "b.bias",
            "p.0.weight",
            "p.0.bias",
            "p.1.weight",
            "p.1.bias"
        ]
    );
}

#[test]
fn a_layer_name_may_repeat_among_siblings_when_its_tensors_differ() {
    // BERT's `output` module, split across a residual.
    let m = spec(
        "pytorch",
        "[8]",
        "  - type: sequential\n    scope: false\n    residual: add\n    layers:\n      - {name: output, type: sequential, layers: [{name: dense, type: dense, units: 8}]}\n  - {name: output, type: sequential, layers: [{name: LayerNorm, type: layer_norm}]}\n",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[
            ("output.dense.weight", &[8, 8]),
            ("output.dense.bias", &[8]),
            ("output.LayerNorm.weight", &[8]),
            ("output.LayerNorm.bias", &[8]),
        ])
    );
}

#[test]
fn shapes_through_every_merge_and_residual() {
    let conv = |f: u64| format!("{{type: conv2d, filters: {f}, kernel_size: 3, padding: 1}}");
    // concat: channels add up (pytorch: axis 0 of the example).
    let w = width_into_dense(
        "pytorch",
        "[4, 8, 8]",
        &format!(
            "  - type: parallel\n    merge: concat\n    layers: [{}, {}]\n",
            conv(3),
            conv(5)
        ),
    );
    assert_eq!(w, 8 * 8 * 8);
    // keras: the last axis.
    let w = width_into_dense(
        "keras",
        "[8, 8, 4]",
        &format!(
            "  - type: parallel\n    merge: concat\n    layers: [{}, {}]\n",
            conv(3),
            conv(5)
        ),
    );
    assert_eq!(w, 8 * 8 * 8);
    // residual concat: the input first, then the block's output.
    let w = width_into_dense(
        "pytorch",
        "[4, 8, 8]",
        &format!(
            "  - type: sequential\n    residual: concat\n    layers: [{}]\n",
            conv(6)
        ),
    );
    assert_eq!(w, 10 * 8 * 8);
    // multiply broadcasts a [C, 1, 1] gate over [C, H, W].
    let w = width_into_dense(
        "pytorch",
        "[4, 8, 8]",
        "  - type: parallel\n    merge: multiply\n    layers:\n      - {type: dropout}\n      - type: sequential\n        layers:\n          - {type: adaptive_avg_pool2d, output_size: 1}\n          - {type: conv2d, filters: 4, kernel_size: 1, activation: sigmoid}\n",
    );
    assert_eq!(w, 4 * 8 * 8);
    // attention: the last branch's width.
    let w = width_into_dense(
        "pytorch",
        "[16]",
        "  - type: parallel\n    merge: attention\n    layers:\n      - {type: dense, units: 32}\n      - {type: dense, units: 32}\n      - {type: dense, units: 8}\n",
    );
    assert_eq!(w, 8);
    // add keeps the shape; a residual add too.
    let w = width_into_dense(
        "pytorch",
        "[16]",
        "  - type: sequential\n    residual: add\n    layers: [{type: dense, units: 32}, {type: dense, units: 16}]\n",
    );
    assert_eq!(w, 16);
}

#[test]
fn blocks_bracket_their_branches_in_the_flow() {
    let m = spec(
        "pytorch",
        "[16]",
        "  - type: parallel\n    merge: multiply\n    residual: add\n    layers: [{type: dense, units: 16}, {type: dense, units: 16}]\n",
    );
    let kinds: Vec<String> = m
        .flow
        .iter()
        .map(|s| match s {
            Step::Layer(l) => l.kind.to_string(),
            Step::Enter { topology, .. } => {
                format!("enter {:?} {:?}", topology.merge, topology.residual)
            }
            Step::Branch => "branch".into(),
            Step::Exit { widths, .. } => format!("exit {widths:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            format!("enter {:?} {:?}", Some(Merge::Multiply), Some(Merge::Add)),
            "dense".into(),
            "branch".into(),
            "dense".into(),
            "exit [Some(16), Some(16), Some(16)]".into(),
        ]
    );
}

#[test]
fn transposed_and_depthwise_kernels_take_their_frameworks_fans() {
    // torch ConvTranspose2d(64, 8, 3, groups=2): weight [64, 4, 3, 3], fan_in 4·9, fan_out 64·9.
    let m = spec(
        "pytorch",
        "[64, 5, 5]",
        "  - {name: ct, type: conv_transpose2d, filters: 8, kernel_size: 3, groups: 2}\n",
    );
    let t = &m.tensors[0];
    assert_eq!(
        (t.shape.clone(), t.fans.fan_in, t.fans.fan_out),
        (vec![64, 4, 3, 3], 36, 576)
    );
    assert_eq!(t.fans_from, FansFrom::Storage);
    // keras Conv2DTranspose(6, 3) on 64 channels: kernel [3, 3, 6, 64], fan_in 6·9.
    let m = spec(
        "keras",
        "[5, 5, 64]",
        "  - {name: ct, type: conv_transpose2d, filters: 6, kernel_size: 3}\n",
    );
    assert_eq!(
        (m.tensors[0].shape.clone(), m.tensors[0].fans.fan_in),
        (vec![3, 3, 6, 64], 54)
    );
    // depthwise: torch fan_in k², keras C·k².
    let m = spec(
        "pytorch",
        "[16, 8, 8]",
        "  - {name: dw, type: depthwise_conv2d, kernel_size: 3}\n",
    );
    assert_eq!(
        (m.tensors[0].shape.clone(), m.tensors[0].fans.fan_in),
        (vec![16, 1, 3, 3], 9)
    );
    let m = spec(
        "keras",
        "[8, 8, 16]",
        "  - {name: dw, type: depthwise_conv2d, kernel_size: 3, depth_multiplier: 2}\n",
    );
    assert_eq!(
        (m.tensors[0].shape.clone(), m.tensors[0].fans.fan_in),
        (vec![3, 3, 16, 2], 144)
    );
    // A depthwise kernel takes `kernel_initializer` from the defaults when `depthwise_initializer` is not set.
    let m = model(
        "t.yaml",
        "name: t\ninput: [16, 8, 8]\ndefaults: {kernel_initializer: zeros}\nlayers:\n  - {name: dw, type: depthwise_conv2d, kernel_size: 3, allow: [zero-kernel]}\n",
    );
    assert_eq!(m.tensors[0].init, specc::init::Init::ZEROS);
}

#[test]
fn transposed_convolution_sizes_follow_each_framework() {
    // torch: (L−1)s − 2p + d(k−1) + op + 1 = 4·2 − 2 + 2 + 1 + 1 = 10
    let w = width_into_dense(
        "pytorch",
        "[4, 5, 5]",
        "  - {type: conv_transpose2d, filters: 2, kernel_size: 3, strides: 2, padding: 1, output_padding: 1}\n",
    );
    assert_eq!(w, 2 * 10 * 10);
    // keras same: L·s; valid: (L−1)s + max(k, s)
    let same = width_into_dense(
        "keras",
        "[7, 4]",
        "  - {type: conv_transpose1d, filters: 6, kernel_size: 3, strides: 2, padding: same}\n",
    );
    assert_eq!(same, 14 * 6);
    let valid = width_into_dense(
        "keras",
        "[7, 4]",
        "  - {type: conv_transpose1d, filters: 6, kernel_size: 3}\n",
    );
    assert_eq!(valid, 9 * 6);
}

#[test]
fn parameters_are_named_by_their_path_and_keep_their_flags() {
    let m = spec(
        "pytorch",
        "[197, 64]",
        "  - {name: class_token, type: parameter, shape: [1, 1, 64], initializer: zeros}\n  - name: encoder\n    type: sequential\n    layers:\n      - {name: pos_embedding, type: parameter, shape: [1, 197, 64], initializer: {name: normal, std: 0.02}}\n      - {name: index, type: parameter, shape: [2401], dtype: int64, trainable: false, initializer: {name: relative_position_index, window_size: 7}}\n",
    );
    assert_eq!(
        names_shapes(&m),
        expect(&[
            ("class_token", &[1, 1, 64]),
            ("encoder.pos_embedding", &[1, 197, 64]),
            ("encoder.index", &[2401]),
        ])
    );
    assert_eq!(m.tensors[2].dtype, specc::DType::I64);
    assert!(m.tensors[0].trainable && !m.tensors[2].trainable);
    // torch's fans of [1, 197, 64]: fan_in 197·64, fan_out 1·64.
    assert_eq!(
        (m.tensors[1].fans.fan_in, m.tensors[1].fans.fan_out),
        (197 * 64, 64)
    );
    // `--dtype` leaves integer tensors alone.
    let c = specc::check_with(
        &specc::SourceFile::new(
            "t.yaml",
            "name: t\nlayers:\n  - {name: i, type: parameter, shape: [4], dtype: int32, initializer: ones}\n  - {name: f, type: parameter, shape: [4], initializer: ones}\n".into(),
        ),
        specc::Options {
            dtype: Some(specc::DType::BF16),
            ..Default::default()
        },
    );
    let m = c.model.unwrap();
    assert_eq!(
        (m.tensors[0].dtype, m.tensors[1].dtype),
        (specc::DType::I32, specc::DType::BF16)
    );
}

#[test]
fn bytes_of_integer_and_padded_tensors() {
    let m = spec(
        "pytorch",
        "[4]",
        "  - {name: b, type: parameter, shape: [3], dtype: bool, initializer: ones}\n  - {name: i, type: parameter, shape: [2], dtype: int32, initializer: {name: constant, value: -7}}\n  - {name: e, type: embedding, num_embeddings: 4, embedding_dim: 3, padding_idx: -1}\n",
    );
    let bytes = |name: &str| {
        let t = m.tensors.iter().find(|t| t.name == name).unwrap();
        specc::build::tensor_bytes(t, m.layout)
    };
    assert_eq!(bytes("b"), [1, 1, 1]);
    assert_eq!(
        bytes("i"),
        [(-7i32).to_le_bytes(), (-7i32).to_le_bytes()].concat()
    );
    let e = bytes("e.weight");
    let floats: Vec<f32> = e
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(floats[..9].iter().all(|x| *x != 0.0));
    assert_eq!(
        &floats[9..],
        &[0.0, 0.0, 0.0],
        "the padding row (-1: the last) is zero"
    );
}

#[test]
fn keras_automatic_names_count_wrapped_layers() {
    // LAYERS2.md §2.5: Bidirectional(LSTM) ×2 then LSTM: bidirectional/forward_lstm,
    // bidirectional_1/forward_lstm_1, lstm_2.
    let m = spec(
        "keras",
        "[5, 4]",
        "  - {type: lstm, units: 6, bidirectional: true}\n  - {type: lstm, units: 6, bidirectional: true}\n  - {type: lstm, units: 3}\n",
    );
    let kernels: Vec<&str> = m
        .tensors
        .iter()
        .filter(|t| t.name.ends_with("/kernel") && !t.name.ends_with("recurrent_kernel"))
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        kernels,
        [
            "bidirectional/forward_lstm/lstm_cell/kernel",
            "bidirectional/backward_lstm/lstm_cell/kernel",
            "bidirectional_1/forward_lstm_1/lstm_cell/kernel",
            "bidirectional_1/backward_lstm_1/lstm_cell/kernel",
            "lstm_2/lstm_cell/kernel",
        ]
    );
}
