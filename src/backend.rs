//! Backend selection at run time. Burn picks a backend by type, so commands are
//! written once, generic over `B: Backend`, and `with_backend!` instantiates them
//! for the one the user asked for.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-flex: pure-Rust CPU backend (the default: it trains fastest on CPU here).
    Flex,
    /// burn-ndarray: pure-Rust CPU backend.
    Ndarray,
    /// burn-cuda: NVIDIA GPUs (needs a build with `--features cuda`).
    Cuda,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Cuda => "cuda",
        })
    }
}

/// `with_backend!(kind, |B, device| expr)`: evaluates `expr` with the type alias `B`
/// and a `device` of the chosen backend. Evaluates to `Result<_, String>`.
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, |$b:ident, $device:ident| $body:expr) => {{
        match $kind {
            $crate::backend::BackendKind::Flex => {
                type $b = burn::backend::Flex;
                let $device = burn::backend::flex::FlexDevice;
                Ok::<_, String>($body)
            }
            $crate::backend::BackendKind::Ndarray => {
                type $b = burn::backend::NdArray;
                let $device = burn::backend::ndarray::NdArrayDevice::Cpu;
                Ok::<_, String>($body)
            }
            $crate::backend::BackendKind::Cuda => $crate::with_cuda!(|$b, $device| $body),
        }
    }};
}

#[cfg(feature = "cuda")]
#[macro_export]
#[doc(hidden)]
macro_rules! with_cuda {
    (|$b:ident, $device:ident| $body:expr) => {{
        type $b = burn::backend::Cuda;
        let $device = burn::backend::cuda::CudaDevice::new(0);
        Ok::<_, String>($body)
    }};
}

#[cfg(not(feature = "cuda"))]
#[macro_export]
#[doc(hidden)]
macro_rules! with_cuda {
    (|$b:ident, $device:ident| $body:expr) => {{ Err::<_, String>("this archc was built without CUDA: rebuild with `cargo build --features cuda`".to_string()) }};
}
