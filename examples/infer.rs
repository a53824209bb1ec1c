//! Using archc as a library: compile a `.arch` file, build its Burn network, load
//! PyTorch-named weights, and classify a batch.
//!
//! ```sh
//! cargo run --example infer -- tests/fixtures/lowering/tiny_resnet.arch \
//!     tests/fixtures/predict/tiny_resnet.pt tests/fixtures/predict/input.npy
//! ```

use archc::elaborate::{Options, compile_file};
use archc::error::{Error, WeightsError};
use archc::lower::weights::StateDict;
use archc::lower::{Network, Value};
use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::TensorData;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arch, weights, input] = args.as_slice() else {
        return Err("usage: infer MODEL.arch WEIGHTS INPUT.npy".into());
    };

    // 1. Compile: parse, elaborate, check every shape. Errors are data (`archc::error`);
    //    their `Display` words them.
    let compiled = compile_file(arch, &Options::default())?;
    if compiled.result.has_errors() {
        eprint!("{}", archc::diagnostics::render_plain(&compiled.sources, &compiled.result.diagnostics));
        return Err(format!("{arch} has errors").into());
    }
    let model = &compiled.result.models[0];

    // 2. Lower to Burn and load weights by their PyTorch names.
    let device = Default::default();
    let network = Network::<Flex>::new(model, &device).load_state_dict(&StateDict::read(Path::new(weights))?).map_err(
        |problems| {
            let weights = weights.into();
            Error::from(WeightsError::DoNotFit { weights, model: model.name.clone(), problems })
        },
    )?;

    // 3. Run it on a [N, C, H, W] float32 array.
    let array = archc::data::npy::read(Path::new(input))?;
    let x = Tensor::<Flex, 4>::from_data(TensorData::new(array.data, array.shape), &device);
    let logits = network.forward(Value::Image(x)).vector();
    let classes: Vec<i64> = logits.argmax(1).into_data().iter::<i64>().collect();
    println!("{}: predicted classes {classes:?}", model.name);
    Ok(())
}
