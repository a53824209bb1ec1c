//! Using archc as a library: compile a `.arch` file, build its Burn network, load
//! PyTorch-named weights, and classify a batch.
//!
//! ```sh
//! cargo run --example infer -- tests/fixtures/lowering/tiny_resnet.arch \
//!     tests/fixtures/predict/tiny_resnet.pt tests/fixtures/predict/input.npy
//! ```

use archc::elaborate::{Options, compile};
use archc::lower::weights::StateDict;
use archc::lower::{Network, Value};
use archc::source::Sources;
use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::TensorData;
use std::path::Path;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arch, weights, input] = args.as_slice() else {
        return Err("usage: infer MODEL.arch WEIGHTS INPUT.npy".into());
    };

    // 1. Compile: parse, elaborate, check every shape.
    let text = std::fs::read_to_string(arch).map_err(|e| format!("{arch}: {e}"))?;
    let mut sources = Sources::new();
    let compiled = compile(&mut sources, arch, &text, &Options::default());
    if compiled.has_errors() {
        eprint!("{}", archc::diagnostics::render_plain(&sources, &compiled.diagnostics));
        return Err(format!("{arch} has errors"));
    }
    let model = &compiled.models[0];

    // 2. Lower to Burn and load weights by their PyTorch names.
    let device = Default::default();
    let network = Network::<Flex>::new(model, &device)
        .load_state_dict(&StateDict::read(Path::new(weights))?)
        .map_err(|errors| errors.join("\n"))?;

    // 3. Run it on a [N, C, H, W] float32 array.
    let array = archc::data::npy::read(Path::new(input))?;
    let x = Tensor::<Flex, 4>::from_data(TensorData::new(array.data, array.shape), &device);
    let logits = network.forward(Value::Image(x)).vector();
    let classes = logits.argmax(1).into_data().convert::<i64>().to_vec::<i64>().unwrap_or_default();
    println!("{}: predicted classes {classes:?}", model.name);
    Ok(())
}
