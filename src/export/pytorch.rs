//! placeholder
use crate::error::Error;
use crate::ir::Model;
use crate::source::Sources;

pub struct Module {
    pub text: String,
    pub classes: Vec<String>,
}

pub fn module(_model: &Model, _sources: &Sources) -> Result<Module, Error> {
    Err(crate::error::ExportError::WeightsInCode.into())
}
