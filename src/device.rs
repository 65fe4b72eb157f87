//! The one place that names a backend: everything else takes a [`Device`].

pub use burn::tensor::Device;

/// The device awd computes on: CUDA or WGPU when built with those features and asked for,
/// otherwise the CPU backend (Burn's `flex`, threaded and vectorized).
pub fn select(name: &str) -> crate::Result<Device> {
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0usize)),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(Default::default())),
        other => Err(crate::AwdError::Config(format!(
            "unknown or not compiled-in device `{other}` (this build has: {})",
            available().join(", ")
        ))),
    }
}

/// The device names this build can select.
pub fn available() -> Vec<&'static str> {
    let mut names = vec!["cpu"];
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    names
}

/// The default CPU device, with autodiff (for training and gradient checks).
pub fn cpu_autodiff() -> Device {
    Device::flex().autodiff()
}

/// The default CPU device, without autodiff (for evaluation and generation).
pub fn cpu() -> Device {
    Device::flex()
}
