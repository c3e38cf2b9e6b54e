//! Load a specc-built MLP with Candle's `VarBuilder` and run a forward pass.
//!
//!     cargo run --release -- build specs/mlp.yaml -o mlp.safetensors
//!     cargo run --release --example load_with_candle -- mlp.safetensors
//!
//! With no argument it builds specs/mlp.yaml itself (into a temporary directory) first.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            // Build in-process with the library: check, then write.
            let src = specc::SourceFile::load("specs/mlp.yaml".as_ref())?
                .map_err(|_| "specs/mlp.yaml is not UTF-8")?;
            let model = specc::check(&src)
                .model
                .ok_or("specs/mlp.yaml has errors")?;
            let out = dir.path().join("mlp.safetensors");
            specc::output::Build::new(&model, &src, &out, Default::default())?.run(&mut |_| {})?;
            out
        }
    };
    // SAFETY: the file is not modified while it is mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu)? };
    let fc1 = candle_nn::linear(784, 256, vb.pp("fc1"))?;
    let fc2 = candle_nn::linear(256, 128, vb.pp("fc2"))?;
    let out = candle_nn::linear(128, 10, vb.pp("out"))?;
    let x = Tensor::randn(0f32, 1.0, (4, 784), &Device::Cpu)?;
    let logits = out.forward(&fc2.forward(&fc1.forward(&x)?.relu()?)?.relu()?)?;
    println!("logits {:?}:\n{logits}", logits.dims());
    let w = vb.get((256, 784), "fc1.weight")?;
    let std = w.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()?;
    println!(
        "fc1.weight std {std:.4} (he_normal: sqrt(2/784) = {:.4})",
        (2.0f32 / 784.0).sqrt()
    );
    Ok(())
}
