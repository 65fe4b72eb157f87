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
        "wgpu" => gpu::wgpu(),
        other => Err(crate::AwdError::Config(format!(
            "unknown or not compiled-in device `{other}` (this build has: {})",
            available().join(", ")
        ))),
    }
}

#[cfg(feature = "wgpu")]
mod gpu {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::{Arc, Mutex};

    use burn::tensor::Tensor;
    use burn_cubecl::cubecl::future::block_on;
    use burn_cubecl::cubecl::wgpu::wgpu as api;

    use super::Device;
    use crate::AwdError;

    /// The wgpu device (Vulkan where the machine has it), checked to come up: Burn's runtime
    /// panics when no adapter serves it, so one tiny upload runs first, quietly, and a failure
    /// becomes an error naming the adapters this machine has.
    pub fn wgpu() -> crate::Result<Device> {
        let device = Device::wgpu(Default::default());
        // The runtime starts on threads of its own: keep every panic's message, show none.
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let hook = std::panic::take_hook();
        let log = seen.clone();
        std::panic::set_hook(Box::new(move |info| {
            let what = info
                .payload_as_str()
                .unwrap_or("the runtime failed to start");
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(what.to_string());
        }));
        let up = catch_unwind(AssertUnwindSafe(|| {
            Tensor::<1>::zeros([1], &device).into_data()
        }));
        std::panic::set_hook(hook);
        if up.is_ok() {
            return Ok(device);
        }
        // The first message is the cause (the others are threads seeing it go).
        let why = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .cloned();
        let why = why.unwrap_or_else(|| "the runtime failed to start".into());
        let found = adapters();
        let found = if found.is_empty() {
            "none (install a Vulkan driver: a GPU's, or Mesa's software one, Debian's \
             `mesa-vulkan-drivers` with `libvulkan1`)"
                .to_string()
        } else {
            found.join("; ")
        };
        Err(AwdError::Config(format!(
            "`--device wgpu`: no usable GPU adapter ({why}); adapters found: {found}"
        )))
    }

    /// Every adapter wgpu sees on this machine, all graphics APIs, as `name (type, API)`.
    pub fn adapters() -> Vec<String> {
        let instance = api::Instance::new(api::InstanceDescriptor {
            backends: api::Backends::all(),
            ..api::InstanceDescriptor::new_without_display_handle()
        });
        block_on(instance.enumerate_adapters(api::Backends::all()))
            .iter()
            .map(|a| {
                let info = a.get_info();
                format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend)
            })
            .collect()
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
