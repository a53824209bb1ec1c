//! Backend selection at run time. Burn picks a backend by type, so commands are
//! written once, generic over `B: Backend`, and `with_backend!` instantiates them
//! for the one the user asked for.

use crate::cost::admission::{Available, Purpose};
use crate::error::{DeviceError, Error};
use crate::ir::Model;
use crate::tensor::Precision;
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
/// and a `device` of the chosen backend. Evaluates to `Result<_, archc::error::Error>`.
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, |$b:ident, $device:ident| $body:expr) => {{
        match $kind {
            $crate::backend::BackendKind::Flex => {
                type $b = burn::backend::Flex;
                let $device = burn::backend::flex::FlexDevice;
                Ok::<_, $crate::error::Error>($body)
            }
            $crate::backend::BackendKind::Ndarray => {
                type $b = burn::backend::NdArray;
                let $device = burn::backend::ndarray::NdArrayDevice::Cpu;
                Ok::<_, $crate::error::Error>($body)
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
        match $crate::backend::cuda_driver() {
            Err(error) => Err::<_, $crate::error::Error>(error.into()),
            Ok(()) => {
                type $b = burn::backend::Cuda;
                let $device = burn::backend::cuda::CudaDevice::new(0);
                Ok::<_, $crate::error::Error>($body)
            }
        }
    }};
}

/// Whether the NVIDIA driver starts and sees a CUDA device; an error saying which of
/// the two is missing. Burn loads the driver on first use and panics when it cannot; asking
/// first turns a machine without CUDA (or a container that hides its GPUs) into one line.
#[cfg(feature = "cuda")]
pub fn cuda_driver() -> Result<(), DeviceError> {
    let handle = [c"libcuda.so.1", c"libcuda.so"].iter().find_map(|name| {
        // SAFETY: dlopen with a valid C string. The handle is never closed: Burn loads
        // the same library next, and unloading an initialised driver is not safe.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
        (!handle.is_null()).then_some(handle)
    });
    let Some(handle) = handle else {
        return Err(DeviceError::NoDriver);
    };
    // SAFETY: symbols looked up by their C names in the driver; a null one is refused.
    let (init, count) =
        unsafe { (libc::dlsym(handle, c"cuInit".as_ptr()), libc::dlsym(handle, c"cuDeviceGetCount".as_ptr())) };
    if init.is_null() || count.is_null() {
        return Err(DeviceError::DriverIncomplete);
    }
    // SAFETY: the driver API's signatures, `CUresult cuInit(unsigned int)` and
    // `CUresult cuDeviceGetCount(int *)` (CUresult is an int; 0 is success).
    let (status, devices) = unsafe {
        let init: extern "C" fn(libc::c_uint) -> libc::c_int = std::mem::transmute(init);
        let count: extern "C" fn(*mut libc::c_int) -> libc::c_int = std::mem::transmute(count);
        let mut devices = 0;
        match init(0) {
            0 => (count(&mut devices), devices),
            failed => (failed, 0),
        }
    };
    match (status, devices) {
        (0, n) if n > 0 => Ok(()),
        (0, _) => Err(DeviceError::NoCudaDevice),
        (code, _) => Err(DeviceError::DriverCannotStart { code }),
    }
}

#[cfg(not(feature = "cuda"))]
#[macro_export]
#[doc(hidden)]
macro_rules! with_cuda {
    (|$b:ident, $device:ident| $body:expr) => {{ Err::<_, $crate::error::Error>($crate::error::DeviceError::BuiltWithoutCuda.into()) }};
}

/// `--devices`: the device indices a run trains on, first the main one. `cuda:N`
/// names a GPU (`--backend cuda`); on the CPU backends each `cpu` is one replica of
/// the network on the one CPU, which runs the data-parallel path without a GPU (it
/// shares the same cores, so it is no faster).
pub fn parse_devices(backend: BackendKind, text: &str) -> Result<Vec<u16>, DeviceError> {
    let mut indices: Vec<u16> = Vec::new();
    for entry in text.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(DeviceError::EmptyEntry { devices: text.to_string() });
        }
        let index = match (backend, entry.strip_prefix("cuda:")) {
            (BackendKind::Cuda, Some(n)) => n
                .parse::<u16>()
                .map_err(|_| DeviceError::NotADevice { entry: entry.to_string(), backend: backend.to_string() })?,
            (BackendKind::Cuda, None) if entry == "cuda" => 0,
            (BackendKind::Flex | BackendKind::Ndarray, None) if entry == "cpu" => 0,
            (BackendKind::Flex | BackendKind::Ndarray, _) if entry.starts_with("cuda") => {
                return Err(DeviceError::GpusNeedCuda { devices: text.to_string() });
            }
            (BackendKind::Cuda, None) => {
                return Err(DeviceError::NotACudaDevice { entry: entry.to_string() });
            }
            _ => {
                return Err(DeviceError::NotADevice { entry: entry.to_string(), backend: backend.to_string() });
            }
        };
        if backend == BackendKind::Cuda && indices.contains(&index) {
            return Err(DeviceError::ListedTwice { index });
        }
        indices.push(index);
    }
    Ok(indices)
}

/// The thread that may compute as one of rayon's (see `use_threads`): the process's
/// main thread, which `main` names; never a library caller's thread, which may end
/// while the pool lives on.
static COMPUTING_THREAD: std::sync::OnceLock<std::thread::ThreadId> = std::sync::OnceLock::new();

/// Called by `archc`'s `main`: its thread computes the commands and lives as long as
/// the process.
pub fn main_thread_computes() {
    let _ = COMPUTING_THREAD.set(std::thread::current().id());
}

/// Starts the pool of `threads` (default: rayon's, one per core) that runs the CPU
/// kernels' parallel loops, and returns its size. With `this_thread_computes` (a
/// benchmark, evaluation, prediction, training on one device: nothing else computes
/// meanwhile), on the thread `main_thread_computes` named, and with two threads or more,
/// that thread is one of them: otherwise rayon wakes its own threads for every parallel
/// loop while this one sleeps until they finish, which on 2 cores was a fifth of
/// LeNet-5's training step at batch 32 (BENCHMARKS.md). PyTorch's OpenMP counts its
/// calling thread the same way. A pool of one thread keeps it its own: a later
/// multi-device run in the same process waits on this thread while its device threads
/// need a worker.
///
/// Once per process: a pool already running is kept, and asking it for another number
/// of threads than it has is an error.
pub fn use_threads(threads: Option<usize>, this_thread_computes: bool) -> Result<usize, DeviceError> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    let size = threads.filter(|&n| n > 0).unwrap_or_else(default_threads);
    if this_thread_computes && size >= 2 && COMPUTING_THREAD.get() == Some(&std::thread::current().id()) {
        builder = builder.use_current_thread();
    }
    match builder.build_global() {
        Ok(()) => Ok(rayon::current_num_threads()),
        Err(_) if threads.is_none_or(|n| n == rayon::current_num_threads()) => Ok(rayon::current_num_threads()),
        Err(e) => Err(DeviceError::Threads { threads: threads.unwrap_or(0), reason: e.to_string() }),
    }
}

/// The pool size rayon picks by default: `RAYON_NUM_THREADS` if set and positive, else
/// one per core.
fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The devices of `indices`, of the same kind as `main` (the one `with_backend!` made).
/// Refuses GPUs the machine does not have.
pub fn devices<B: burn::prelude::Backend>(main: &B::Device, indices: &[u16]) -> Result<Vec<B::Device>, DeviceError> {
    use burn::tensor::backend::{Device as _, DeviceId};
    let type_id = main.to_id().type_id;
    // Index 0 always exists (and is all a CPU has); only GPUs beyond it need counting.
    let count = if indices.iter().any(|&i| i > 0) { B::device_count(type_id) } else { 1 };
    if let Some(&index) = indices.iter().find(|&&i| usize::from(i) >= count) {
        return Err(DeviceError::NoSuchDevice { index, count });
    }
    Ok(indices.iter().map(|&index_id| B::Device::from_id(DeviceId { type_id, index_id })).collect())
}

/// Refuses a precision the backend cannot compute in, naming both.
pub fn check_precision<B: burn::prelude::Backend>(
    precision: Precision,
    backend: impl fmt::Display,
    device: &B::Device,
) -> Result<(), DeviceError> {
    match precision.supported::<B>(device) {
        true => Ok(()),
        false => Err(DeviceError::NoPrecision { backend: backend.to_string(), precision: precision.to_string() }),
    }
}

/// What a panic said, on one line: how a failure inside a backend (CUDA running out of
/// memory, say) is reported like any other error.
pub fn failure_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(text), _) => text.to_string(),
        (_, Some(text)) => text.clone(),
        _ => "no message".to_string(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Refuses to build `model` for `batch` when its memory estimate exceeds what the
/// device of `kind` can give (see `cost::admission`). Where the platform cannot say
/// what it can give, nothing is refused.
pub fn admit(kind: BackendKind, model: &Model, purpose: Purpose, batch: u64) -> Result<(), Error> {
    match available_memory(kind) {
        Some(available) => crate::cost::admission::admit(model, purpose, batch, &available),
        None => Ok(()),
    }
}

/// What the device can give a network now, for admission (`cost::admission`); `None`
/// where the platform cannot say (then nothing is refused).
pub fn available_memory(kind: BackendKind) -> Option<Available> {
    match kind {
        BackendKind::Flex | BackendKind::Ndarray => cpu_memory(),
        BackendKind::Cuda => cuda_memory(),
    }
}

/// The smaller of the kernel's `MemAvailable` and the room left under this process's
/// cgroup limit (a container's memory limit is not in MemAvailable).
fn cpu_memory() -> Option<Available> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = field(&meminfo, "MemAvailable:")? * 1024;
    let machine = Available { bytes: available, source: "MemAvailable".into() };
    match cgroup_room() {
        Some(room) if room < available => Some(Available { bytes: room, source: "the cgroup's memory limit".into() }),
        _ => Some(machine),
    }
}

/// `KEY value` in a /proc or cgroup file.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find(|l| l.starts_with(key))?[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The cgroup's limit less what it uses, not counting page cache the kernel can drop
/// (inactive files), as container runtimes count a working set. cgroup v2, then v1.
fn cgroup_room() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let number = |path: &str| read(path)?.trim().parse::<u64>().ok();
    let (limit, used, stat, cache_key) = match read("/sys/fs/cgroup/memory.max") {
        Some(max) => (
            max.trim().parse::<u64>().ok()?,
            number("/sys/fs/cgroup/memory.current")?,
            read("/sys/fs/cgroup/memory.stat"),
            "inactive_file ",
        ),
        None => (
            number("/sys/fs/cgroup/memory/memory.limit_in_bytes")?,
            number("/sys/fs/cgroup/memory/memory.usage_in_bytes")?,
            read("/sys/fs/cgroup/memory/memory.stat"),
            "total_inactive_file ",
        ),
    };
    // v1 writes "no limit" as a number near 2^63.
    if limit >= 1 << 60 {
        return None;
    }
    let cache = stat.as_deref().and_then(|s| field(s, cache_key)).unwrap_or(0);
    Some(limit.saturating_sub(used.saturating_sub(cache)))
}

/// Device 0's total memory (the driver's `cuDeviceTotalMem`, which needs no context)
/// less what this process's allocator has reserved on it.
#[cfg(feature = "cuda")]
fn cuda_memory() -> Option<Available> {
    cuda_driver().ok()?;
    // SAFETY: the driver was loaded and initialised by cuda_driver above (dlopen of a
    // loaded library returns its handle); symbols are looked up by their C names and
    // a null one is refused.
    let total = unsafe {
        let handle = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if handle.is_null() {
            return None;
        }
        let (get, total_mem) =
            (libc::dlsym(handle, c"cuDeviceGet".as_ptr()), libc::dlsym(handle, c"cuDeviceTotalMem_v2".as_ptr()));
        if get.is_null() || total_mem.is_null() {
            return None;
        }
        // `CUresult cuDeviceGet(CUdevice *, int)`, `CUresult cuDeviceTotalMem_v2(size_t *, CUdevice)`.
        let get: extern "C" fn(*mut libc::c_int, libc::c_int) -> libc::c_int = std::mem::transmute(get);
        let total_mem: extern "C" fn(*mut libc::size_t, libc::c_int) -> libc::c_int = std::mem::transmute(total_mem);
        let mut device = 0;
        let mut bytes: libc::size_t = 0;
        if get(&mut device, 0) != 0 || total_mem(&mut bytes, device) != 0 {
            return None;
        }
        bytes as u64
    };
    use burn::cubecl::Runtime;
    let client = burn::cubecl::cuda::CudaRuntime::client(&burn::backend::cuda::CudaDevice::new(0));
    let reserved = client.memory_usage().map(|usage| usage.bytes_reserved).unwrap_or(0);
    Some(Available { bytes: total.saturating_sub(reserved), source: "the GPU's memory less what archc holds".into() })
}

#[cfg(not(feature = "cuda"))]
fn cuda_memory() -> Option<Available> {
    None
}
