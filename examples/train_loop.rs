//! A hand-written training loop around an archc network: SGD with momentum on a
//! fixed random batch, reporting loss and images per second. Also how the default
//! CPU backend was chosen (README, "Backends").
//!
//! ```sh
//! cargo run --example train_loop -- flex models/resnet20.arch 128 5
//! cargo run --example train_loop -- ndarray models/resnet20.arch 128 5
//! ```

use archc::elaborate::{Options, compile};
use archc::ir::Shape;
use archc::lower::{Network, Value};
use archc::source::Sources;
use burn::backend::{Autodiff, Flex, NdArray};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::backend::AutodiffBackend;
use std::time::Instant;

fn train<B: AutodiffBackend>(arch: &str, batch: usize, steps: usize, device: B::Device) -> Result<(), String> {
    let text = std::fs::read_to_string(arch).map_err(|e| format!("{arch}: {e}"))?;
    let mut sources = Sources::new();
    let compiled = compile(&mut sources, arch, &text, &Options::default());
    let model = compiled.models.first().ok_or(format!("{arch} has errors"))?;
    let (Shape::Image { c, h, w }, Shape::Vector { d: classes }) = (model.input, model.output) else {
        return Err("this example trains image classifiers".into());
    };
    B::seed(&device, 0);
    let mut network = Network::<B>::new(model, &device);
    let mut optimizer = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
        .init::<B, Network<B>>();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let images =
        Tensor::<B, 4>::random([batch, c as usize, h as usize, w as usize], Distribution::Normal(0.0, 1.0), &device);
    let labels = Tensor::<B, 1, Int>::from_data(
        burn::tensor::TensorData::new((0..batch as i64).map(|i| i % classes as i64).collect::<Vec<_>>(), [batch]),
        &device,
    );
    for step in 0..steps {
        let start = Instant::now();
        let logits = network.forward(Value::Image(images.clone())).vector();
        let loss = loss_fn.forward(logits, labels.clone());
        let value = loss.clone().into_scalar().elem::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &network);
        network = optimizer.step(0.01, network, grads);
        let seconds = start.elapsed().as_secs_f64();
        println!("step {step}: loss {value:.4}, {:.1} images/s", batch as f64 / seconds);
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: train_loop flex|ndarray MODEL.arch BATCH STEPS";
    let [backend, arch, batch, steps] = args.as_slice() else { return Err(usage.into()) };
    let batch: usize = batch.parse().map_err(|_| usage)?;
    let steps: usize = steps.parse().map_err(|_| usage)?;
    match backend.as_str() {
        "flex" => train::<Autodiff<Flex>>(arch, batch, steps, Default::default()),
        "ndarray" => train::<Autodiff<NdArray>>(arch, batch, steps, Default::default()),
        _ => Err(usage.into()),
    }
}
