//! ImageFolder: one sub-directory per class (sorted by name), PNG/JPEG files inside,
//! each decoded and resized to the model's input.

use super::memory::Dataset;
use crate::error::{DataError, Error, IoReason};
use std::path::{Path, PathBuf};

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let unreadable = |e: std::io::Error| Error::Read { path: dir.to_path_buf(), reason: IoReason::os(&e) };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(unreadable)?;
    entries.sort();
    Ok(entries)
}

/// Reads a folder of class folders at the given size (channels 1 or 3). `classes`, for
/// a validation split, are the training split's: its folders are labelled by those
/// names (it may lack some), and a folder that is not one of them is an error.
pub fn read(
    root: &Path,
    name: &str,
    (channels, height, width): (usize, usize, usize),
    classes: Option<&[String]>,
    skipped: &mut Vec<PathBuf>,
) -> Result<Dataset, Error> {
    let class_dirs: Vec<PathBuf> = sorted_entries(root)?.into_iter().filter(|p| p.is_dir()).collect();
    if class_dirs.is_empty() {
        return Err(DataError::NoClassFolders { root: root.to_path_buf() }.into());
    }
    let names: Vec<String> = class_dirs
        .iter()
        .map(|dir| dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default())
        .collect();
    let mut dataset = Dataset::empty(name, channels, height, width);
    dataset.classes = classes.map_or_else(|| names.clone(), <[String]>::to_vec);
    for (dir, folder) in class_dirs.iter().zip(&names) {
        let Some(class) = dataset.classes.iter().position(|c| c == folder) else {
            return Err(DataError::UnknownClass { dir: dir.clone() }.into());
        };
        let (images, others): (Vec<PathBuf>, Vec<PathBuf>) =
            sorted_entries(dir)?.into_iter().partition(|p| is_image(p));
        // Hidden files (.DS_Store, editors' backups) are the system's, not the user's.
        skipped.extend(
            others.into_iter().filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))),
        );
        // A training class without images cannot be learned, and would silently
        // shift what the model's outputs mean.
        if images.is_empty() && classes.is_none() {
            return Err(DataError::EmptyClass { dir: dir.clone() }.into());
        }
        for file in images {
            let floats = super::images::load(&file, channels, height, width, None)?;
            // Back to bytes: the pipeline normalises every dataset the same way later.
            let bytes = rearrange(&floats);
            dataset.pixels.extend(bytes);
            dataset.labels.push(class as u32);
        }
    }
    if dataset.labels.is_empty() {
        return Err(DataError::NoImages { root: root.to_path_buf() }.into());
    }
    Ok(dataset)
}

fn rearrange(floats: &[f32]) -> Vec<u8> {
    floats.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect()
}
