//! Loading specc's output with Candle, for real: `VarBuilder::from_mmaped_safetensors` and
//! a forward pass through `candle_nn` layers; and the in-process `VarMap` builder.

use crate::common::build;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

#[test]
fn mlp_loads_into_candle_and_runs_forward() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("mlp.safetensors");
    build("specs/mlp.yaml".as_ref(), &path, &[]);
    // SAFETY: the file is ours and not modified while mapped.
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu) }.unwrap();
    let fc1 = candle_nn::linear(784, 256, vb.pp("fc1")).unwrap();
    let fc2 = candle_nn::linear(256, 128, vb.pp("fc2")).unwrap();
    let out = candle_nn::linear(128, 10, vb.pp("out")).unwrap();
    let x = Tensor::ones((3, 784), DType::F32, &Device::Cpu).unwrap();
    let y = out
        .forward(
            &fc2.forward(&fc1.forward(&x).unwrap().relu().unwrap())
                .unwrap()
                .relu()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(y.dims(), &[3, 10]);
    let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0));

    // The same values as the in-process VarMap.
    let m = crate::common::model(
        "mlp.yaml",
        &std::fs::read_to_string("specs/mlp.yaml").unwrap(),
    );
    let map = specc::build::build_varmap(&m).unwrap();
    let vars = map.data().lock().unwrap();
    let w_file: Vec<f32> = vb
        .get((256, 784), "fc1.weight")
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let w_map: Vec<f32> = vars["fc1.weight"]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(w_file, w_map);
}

#[test]
fn cnn_and_lstm_load_into_candle_layers() {
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("cnn.yaml");
    std::fs::write(
        &spec,
        "name: cnn\ninput: [3, 16, 16]\nlayers:\n  - {name: conv, type: conv2d, filters: 8, kernel_size: 3, padding: 1}\n  - {name: bn, type: batch_norm}\n  - {type: global_avg_pool2d}\n  - {name: emb, type: embedding, num_embeddings: 20, embedding_dim: 8}\n  - {name: rnn, type: lstm, units: 6, input_size: 8}\n  - {name: ln, type: layer_norm, normalized_shape: 6}\n",
    )
    .unwrap();
    let path = d.path().join("cnn.safetensors");
    build(&spec, &path, &[]);
    // SAFETY: as above.
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu) }.unwrap();
    let conv = candle_nn::conv2d(
        3,
        8,
        3,
        candle_nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        },
        vb.pp("conv"),
    )
    .unwrap();
    let bn = candle_nn::batch_norm(8, 1e-5, vb.pp("bn")).unwrap();
    let x = Tensor::ones((2, 3, 16, 16), DType::F32, &Device::Cpu).unwrap();
    use candle_nn::ModuleT;
    let h = bn.forward_t(&conv.forward(&x).unwrap(), false).unwrap();
    assert_eq!(h.dims(), &[2, 8, 16, 16]);
    let emb = candle_nn::embedding(20, 8, vb.pp("emb")).unwrap();
    let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let e = emb.forward(&ids).unwrap();
    let lstm = candle_nn::lstm(8, 6, candle_nn::LSTMConfig::default(), vb.pp("rnn")).unwrap();
    use candle_nn::RNN;
    let states = lstm.seq(&e).unwrap();
    let hs = lstm.states_to_tensor(&states).unwrap();
    let ln = candle_nn::layer_norm(6, 1e-5, vb.pp("ln")).unwrap();
    assert_eq!(ln.forward(&hs).unwrap().dims(), &[1, 3, 6]);
}

#[test]
fn varmap_shares_tied_weights() {
    let text = "name: t\ninput: [4]\nlayers:\n  - {name: wte, type: embedding, num_embeddings: 50, embedding_dim: 8}\n  - {name: lm_head, type: dense, units: 50, use_bias: false, tie: wte}\n";
    let m = crate::common::model("t.yaml", text);
    let map = specc::build::build_varmap(&m).unwrap();
    let vars = map.data().lock().unwrap();
    let (a, b) = (&vars["wte.weight"], &vars["lm_head.weight"]);
    a.set(&Tensor::zeros((50, 8), DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    let s: f32 = b.as_tensor().sum_all().unwrap().to_scalar().unwrap();
    assert_eq!(s, 0.0, "lm_head.weight is the same variable as wte.weight");
}
