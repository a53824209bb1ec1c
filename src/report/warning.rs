//! Warnings: what a job could not do without stopping, as data; worded here.

/// Something a job could not do that does not stop it (a picture without a font, say).
#[derive(Clone, Debug, PartialEq)]
pub enum Warning {
    /// `curves.png` was not drawn (no font, say); metrics.csv holds the same numbers.
    NoCurves { reason: String },
    /// A picture of a report was not drawn; its numbers are in the report's tables.
    NotDrawn { picture: String, reason: String },
    /// The confusion matrix of an evaluation was not drawn; it is printed.
    NoConfusion { reason: String },
    /// Attention maps shown without weights are an untrained network's.
    UntrainedMaps,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::NoCurves { reason } => write!(f, "no learning-curve plot: {reason}"),
            Warning::NotDrawn { picture, reason } => write!(f, "{picture} not drawn: {reason}"),
            Warning::NoConfusion { reason } => write!(f, "no confusion-matrix plot: {reason}"),
            Warning::UntrainedMaps => write!(f, "no --weights: these are the maps of an untrained network"),
        }
    }
}
