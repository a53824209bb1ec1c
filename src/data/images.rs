//! Images as model input: decoded (PNG/JPEG), resized to the model's height and width
//! (a triangle filter over pixel centres, rounded once), converted to its channels
//! (1 = grey as PIL's `convert("L")`, 3 = RGB), scaled to [0, 1] and normalised per
//! channel.

use crate::error::{ArgumentError, DataError, Error, FileKind, IoReason};
use std::path::Path;

/// Per-channel normalisation: (x − mean) / std, x in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Decodes an image into [C, H, W] floats, ready for the model.
pub fn load(
    path: &Path,
    channels: usize,
    height: usize,
    width: usize,
    normalize: Option<&Normalize>,
) -> Result<Vec<f32>, Error> {
    let unreadable = |e: std::io::Error| Error::Read { path: path.to_path_buf(), reason: IoReason::os(&e) };
    let image = image::ImageReader::open(path)
        .map_err(unreadable)?
        .with_guessed_format()
        .map_err(unreadable)?
        .decode()
        .map_err(|e| Error::Malformed { path: path.to_path_buf(), kind: FileKind::Image, problem: e.to_string() })?;
    let resized = image.resize_exact(width as u32, height as u32, image::imageops::FilterType::Triangle);
    let mut out = vec![0f32; channels * height * width];
    match channels {
        1 => {
            // PIL's `convert("L")`, which torchvision's `Grayscale` uses too: ITU-R 601-2
            // luma in 16-bit fixed point, rounded. (The image crate's `to_luma8` weighs by
            // Rec. 709 and truncates, which is not what a PyTorch-trained model has seen.)
            // A grey image comes back unchanged.
            for (i, p) in resized.to_rgb8().pixels().enumerate() {
                let [r, g, b] = p.0.map(u32::from);
                out[i] = ((19_595 * r + 38_470 * g + 7_471 * b + 0x8000) >> 16) as f32 / 255.0;
            }
        }
        3 => {
            let rgb = resized.to_rgb8();
            for (i, p) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    out[c * height * width + i] = p.0[c] as f32 / 255.0;
                }
            }
        }
        channels => return Err(DataError::Channels { path: path.to_path_buf(), channels }.into()),
    }
    if let Some(n) = normalize {
        if n.mean.len() != channels || n.std.len() != channels {
            return Err(DataError::NormalizationChannels { means: n.mean.len(), stds: n.std.len(), channels }.into());
        }
        for c in 0..channels {
            for v in &mut out[c * height * width..(c + 1) * height * width] {
                *v = (*v - n.mean[c]) / n.std[c];
            }
        }
    }
    Ok(out)
}

/// The normalisation for image inputs: `mean` and `std` when given (both or neither),
/// else what a checkpoint stores, else none.
pub fn normalization(
    mean: &Option<Vec<f32>>,
    std: &Option<Vec<f32>>,
    stored: Option<(Vec<f32>, Vec<f32>)>,
    channels: usize,
) -> Result<Option<Normalize>, Error> {
    let (mean, std) = match (mean, std) {
        (Some(m), Some(s)) => (m.clone(), s.clone()),
        (None, None) => match stored {
            Some(stored) => stored,
            None => return Ok(None),
        },
        _ => return Err(ArgumentError::MeanWithoutStd.into()),
    };
    if mean.len() != channels || std.len() != channels || std.contains(&0.0) {
        return Err(ArgumentError::Normalization { channels }.into());
    }
    Ok(Some(Normalize { mean, std }))
}
