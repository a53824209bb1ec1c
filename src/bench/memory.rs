//! Peak memory of one measurement.
//!
//! CPU: growth of the process's resident set (Linux), the same rule
//! `bench/pytorch_reference.py` uses so the two columns compare: freed heap is first
//! handed back to the OS (`malloc_trim`), the kernel's high-water mark is reset
//! (`/proc/self/clear_refs` ← 5), and the peak is `VmHWM` at the end minus `VmRSS` at
//! the start. CUDA: growth of the bytes the device allocator has reserved; its pools
//! only grow during a run, so the growth is the peak the run needed.

use crate::backend::BackendKind;
use burn::prelude::Backend;

/// A started peak-memory measurement.
pub enum MemoryProbe {
    Resident(ResidentGrowth),
    Device { baseline: u64 },
}

impl MemoryProbe {
    /// `None` where the platform cannot say (the report then shows `null`).
    pub fn start<B: Backend>(kind: BackendKind, device: &B::Device) -> Option<MemoryProbe> {
        match kind {
            BackendKind::Cuda => {
                // Hand back pool pages freed by earlier measurements, so growth counts
                // what this one needs.
                B::memory_cleanup(device);
                Some(MemoryProbe::Device { baseline: device_reserved_bytes()? })
            }
            BackendKind::Flex | BackendKind::Ndarray => ResidentGrowth::start().map(MemoryProbe::Resident),
        }
    }

    pub fn peak_growth(&self) -> Option<u64> {
        match self {
            MemoryProbe::Resident(growth) => growth.peak_growth(),
            MemoryProbe::Device { baseline } => Some(device_reserved_bytes()?.saturating_sub(*baseline)),
        }
    }
}

/// Resident-set growth of this process.
pub struct ResidentGrowth {
    baseline: u64,
}

impl ResidentGrowth {
    pub fn start() -> Option<ResidentGrowth> {
        trim_heap();
        // Resetting the high-water mark needs Linux ≥ 4.0; without it a peak from an
        // earlier, larger batch would be reported again.
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        Some(ResidentGrowth { baseline: status_kib("VmRSS:")? * 1024 })
    }

    pub fn peak_growth(&self) -> Option<u64> {
        Some((status_kib("VmHWM:")? * 1024).saturating_sub(self.baseline))
    }
}

/// A line of /proc/self/status such as `VmHWM:    123456 kB`, in KiB.
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only returns free heap pages to the OS; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// Bytes reserved by the CUDA allocator of device 0.
#[cfg(feature = "cuda")]
fn device_reserved_bytes() -> Option<u64> {
    use burn::cubecl::Runtime;
    use burn::cubecl::cuda::CudaRuntime;
    let client = CudaRuntime::client(&burn::backend::cuda::CudaDevice::new(0));
    client.memory_usage().ok().map(|usage| usage.bytes_reserved)
}

#[cfg(not(feature = "cuda"))]
fn device_reserved_bytes() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn growth_sees_a_large_allocation() {
        let probe = ResidentGrowth::start().expect("Linux reports resident memory");
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let growth = probe.peak_growth().expect("status readable once started");
        assert!(growth >= 60 << 20, "64 MiB touched, growth {growth}");
    }
}
