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
    /// Images fed as 0–1 pixels: neither the weights nor the command gave a mean and std.
    Unnormalized { weights: std::path::PathBuf },
    /// Files in an ImageFolder that are not PNG or JPEG images, left out.
    SkippedFiles { count: usize, first: std::path::PathBuf },
    /// A training set smaller than the number of classes cannot show every class.
    FewerImagesThanClasses { images: usize, classes: usize },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::NoCurves { reason } => write!(f, "no learning-curve plot: {reason}"),
            Warning::NotDrawn { picture, reason } => write!(f, "{picture} not drawn: {reason}"),
            Warning::NoConfusion { reason } => write!(f, "no confusion-matrix plot: {reason}"),
            Warning::UntrainedMaps => write!(f, "no --weights: these are the maps of an untrained network"),
            Warning::Unnormalized { weights } => write!(
                f,
                "`{}` records no mean/std and none was given: the images go in unnormalised (pixels in 0..1); give --mean and --std as the model was trained",
                weights.display()
            ),
            Warning::SkippedFiles { count: 1, first } => {
                write!(f, "skipped `{}`: it is not a PNG or JPEG image", first.display())
            }
            Warning::SkippedFiles { count, first } => write!(
                f,
                "skipped {count} files in the image folders that are not PNG or JPEG images (the first: `{}`)",
                first.display()
            ),
            Warning::FewerImagesThanClasses { images, classes } => write!(
                f,
                "the training set has {images} image{} for {classes} classes: some classes have no image to learn from",
                if *images == 1 { "" } else { "s" }
            ),
        }
    }
}
