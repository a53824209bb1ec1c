//! The same model files compiled with every combination of swept network arguments
//! (`--sweep skip=false,true`, `--depths 8,20`): what `archc analyze` and `archc
//! compare` run side by side.

use super::{Compiled, Options, compile_file};
use crate::error::{ArgumentError, Error, Purpose};
use crate::ir::Model;

/// One network to analyse: a model file with one combination of swept values.
pub struct Variant {
    /// The network's name and the swept values.
    pub label: String,
    pub path: String,
    /// Every `--set`, the swept ones included.
    pub settings: Vec<(String, String)>,
    pub model: Model,
}

/// Every combination of the swept values, in order (the last sweep varies fastest).
fn combinations(sweeps: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut all = vec![Vec::new()];
    for (name, values) in sweeps {
        all = all
            .into_iter()
            .flat_map(|prefix: Vec<(String, String)>| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((name.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    all
}

/// Every model file with every combination of the swept values, compiled and labelled
/// (`deepnet skip=false depth=30`). A parameter is either fixed (`--set`) or swept, and
/// swept once; `depth_flag` names where a `depth` sweep came from, for the message.
pub fn compile_variants(
    paths: &[String],
    compile: &Options,
    sweeps: &[(String, Vec<String>)],
    depth_flag: &str,
    compiled_file: &mut dyn FnMut(&Compiled),
) -> Result<Vec<Variant>, Error> {
    for (i, (name, _)) in sweeps.iter().enumerate() {
        if sweeps[..i].iter().any(|(n, _)| n == name) {
            return Err(ArgumentError::SweptTwice { name: name.clone() }.into());
        }
        if compile.set.iter().any(|(n, _)| n == name) {
            let flag = if name == "depth" { depth_flag } else { "--sweep" };
            return Err(ArgumentError::FixedAndSwept { name: name.clone(), flag: flag.to_string() }.into());
        }
    }
    let mut out = Vec::new();
    for path in paths {
        for combination in combinations(sweeps) {
            let mut options = compile.clone();
            options.set.extend(combination.iter().cloned());
            let compiled = compile_file(path, &options)?;
            compiled_file(&compiled);
            let Some(model) = compiled.result.models.into_iter().next() else {
                return Err(Error::HasErrors { path: path.clone(), purpose: Purpose::Run });
            };
            let values: Vec<String> = combination.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let label = std::iter::once(model.name.clone()).chain(values).collect::<Vec<_>>().join(" ");
            out.push(Variant { label, path: path.clone(), settings: options.set, model });
        }
    }
    Ok(out)
}
