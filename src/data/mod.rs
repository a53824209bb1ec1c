//! Reading inputs: training datasets (`dataset` says where they come from, `memory`
//! holds them), images (PNG/JPEG) resized and normalised for a model, and `.npy`
//! arrays. Errors are one line naming the file.

mod cifar;
pub mod dataset;
mod folder;
mod idx;
pub mod images;
mod memory;
pub mod npy;
