//! The plumbing every fused kernel shares: which implementation runs ([`Compute`], [`Kernels`],
//! decided here alone), tensors lowered to a kernel backend (flex, or cubecl with the `wgpu`
//! feature) with or without autodiff ([`Lowered`]), one skeleton that runs a kernel as a Burn
//! autodiff operation or as a plain one ([`fused_op`]), and host buffers.

use burn::tensor::{Tensor, TensorData};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::ops::{Backward, OpsKind};
use burn_backend::{Backend, BackendTypes};
use burn_flex::{Flex, FlexTensor};

/// A tracked tensor of `B` under autodiff.
type AdTensor<B> = <Autodiff<B> as BackendTypes>::FloatTensorPrimitive;
/// A float tensor of `B`.
pub(crate) type Primitive<B> = <B as BackendTypes>::FloatTensorPrimitive;

/// Which implementation computes the LSTM layers and the decoder's loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// The fused kernels where the tensors are on a backend that has them (flex on the CPU,
    /// the cubecl backend with the `wgpu` feature), the reference ops elsewhere.
    #[default]
    Fused,
    /// The reference ops everywhere: the oracle the fused kernels are tested against.
    Reference,
}

impl Compute {
    /// Whether a fused kernel runs on `t` (and the tensors that go with it).
    pub fn fused_for<const D: usize>(self, t: &Tensor<D>) -> bool {
        self == Compute::Fused && Kernels::of(t).is_some()
    }
}

/// The kernels a tensor's backend has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// The CPU kernels (Burn's flex backend).
    Cpu,
    /// The CubeCL kernels (Burn's cubecl backend, the `wgpu` feature).
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    Gpu,
}

impl Kernels {
    /// `None` on a backend without fused kernels.
    pub fn of<const D: usize>(t: &Tensor<D>) -> Option<Self> {
        if Lowered::<Flex>::new(t.clone()).is_some() {
            return Some(Kernels::Cpu);
        }
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if Lowered::<super::gpu::Cube>::new(t.clone()).is_some() {
            return Some(Kernels::Gpu);
        }
        None
    }
}

/// A backend the fused kernels run on: how a dispatch tensor is lowered to it and raised back.
pub(crate) trait KernelBackend: Backend {
    fn lower_tracked<const D: usize>(t: Tensor<D>) -> Option<AdTensor<Self>>;
    fn lower_plain<const D: usize>(t: Tensor<D>) -> Option<Primitive<Self>>;
    fn raise_tracked<const D: usize>(t: AdTensor<Self>) -> Tensor<D>;
    fn raise_plain<const D: usize>(t: Primitive<Self>) -> Tensor<D>;
}

macro_rules! kernel_backend {
    ($b:ty) => {
        impl KernelBackend for $b {
            fn lower_tracked<const D: usize>(t: Tensor<D>) -> Option<AdTensor<Self>> {
                t.try_into_primitive::<Autodiff<$b>>().ok()
            }
            fn lower_plain<const D: usize>(t: Tensor<D>) -> Option<Primitive<Self>> {
                t.try_into_primitive::<$b>().ok()
            }
            fn raise_tracked<const D: usize>(t: AdTensor<Self>) -> Tensor<D> {
                Tensor::from_primitive::<Autodiff<$b>>(t)
            }
            fn raise_plain<const D: usize>(t: Primitive<Self>) -> Tensor<D> {
                Tensor::from_primitive::<$b>(t)
            }
        }
    };
}
kernel_backend!(Flex);
#[cfg(any(feature = "wgpu", feature = "cuda"))]
kernel_backend!(super::gpu::Cube);

/// A float tensor lowered to a kernel backend (flex unless named): tracked by autodiff, or plain.
pub(crate) enum Lowered<B: KernelBackend = Flex> {
    Tracked(AdTensor<B>),
    Plain(Primitive<B>),
}

impl<B: KernelBackend> Lowered<B> {
    /// `None` when `t` is on another backend.
    pub fn new<const D: usize>(t: Tensor<D>) -> Option<Self> {
        if t.is_autodiff() {
            B::lower_tracked(t).map(Lowered::Tracked)
        } else {
            B::lower_plain(t).map(Lowered::Plain)
        }
    }

    /// [`Lowered::new`] for tensors [`Kernels::of`] has placed on `B`.
    pub fn of<const D: usize>(t: Tensor<D>) -> Self {
        Self::new(t).expect("fused kernels run on their own backend's tensors (Kernels::of checks)")
    }

    /// The backend's value (the primitive under autodiff's tracking).
    pub fn value(&self) -> &Primitive<B> {
        match self {
            Lowered::Tracked(t) => t.primitive(),
            Lowered::Plain(t) => t,
        }
    }

    /// A value of the same kind (a tracked constant beside tracked inputs).
    pub fn like(&self, value: Primitive<B>) -> Self {
        match self {
            Lowered::Tracked(_) => Lowered::Tracked(AdTensor::<B>::new(value)),
            Lowered::Plain(_) => Lowered::Plain(value),
        }
    }

    pub fn tensor<const D: usize>(self) -> Tensor<D> {
        match self {
            Lowered::Tracked(t) => B::raise_tracked(t),
            Lowered::Plain(t) => B::raise_plain(t),
        }
    }
}

/// Runs a fused kernel on `inputs` (its graph parents). `forward` gets their backend values and
/// whether a backward will follow, and returns the output with, when it will, the state `bw`
/// needs. With tracked inputs the output is one autodiff node whose backward is `bw`.
pub(crate) fn fused_op<B, Bw, const N: usize>(
    bw: Bw,
    inputs: [Lowered<B>; N],
    forward: impl FnOnce([&Primitive<B>; N], bool) -> (Option<Bw::State>, Primitive<B>),
) -> Lowered<B>
where
    B: KernelBackend,
    Bw: Backward<B, N>,
{
    let values = inputs.each_ref().map(Lowered::value);
    if !inputs.iter().all(|i| matches!(i, Lowered::Tracked(_))) {
        return Lowered::Plain(forward(values, false).1);
    }
    let nodes = inputs.each_ref().map(|i| match i {
        Lowered::Tracked(t) => t.node(),
        Lowered::Plain(_) => unreachable!("checked above"),
    });
    let out = match bw
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (state, out) = forward(values, true);
            prep.finish(state.expect("a tracked forward returns its state"), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(values, false).1),
    };
    Lowered::Tracked(out)
}

/// A tensor's values for the kernels: the flex buffer itself when contiguous, else a copy.
#[derive(Debug, Clone)]
pub enum Buf {
    Owned(Vec<f32>),
    Flex(FlexTensor),
}

impl Buf {
    /// A tensor's values, copied only if its layout is not contiguous.
    pub fn from_flex(t: &FlexTensor) -> Self {
        let t = t.to_contiguous();
        if t.as_slice::<f32>().is_some() {
            Buf::Flex(t)
        } else {
            Buf::Owned(t.to_contiguous().storage::<f32>().to_vec())
        }
    }

    /// The values as a flex tensor of `shape` (no copy when they are one already).
    pub fn into_flex(self, shape: Vec<usize>) -> FlexTensor {
        match self {
            Buf::Owned(v) => flex(v, shape),
            Buf::Flex(f) => f,
        }
    }
}

impl std::ops::Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Buf::Owned(v) => v,
            Buf::Flex(t) => t.as_slice::<f32>().expect("made contiguous in from_flex"),
        }
    }
}

/// `Σ x²` of a tensor's values, on the host when it is on the flex backend (`None` elsewhere).
pub fn sum_squares<const D: usize>(t: &Tensor<D>) -> Option<f64> {
    let lowered = Lowered::<Flex>::new(t.clone())?;
    Some(super::math::sum_squares(&Buf::from_flex(lowered.value())))
}

/// The host copy of a flex tensor's values (row-major).
pub(crate) fn host(t: &FlexTensor) -> Vec<f32> {
    Buf::from_flex(t).to_vec()
}

pub(crate) fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A pointer into an output buffer that may cross threads, for parallel tasks that each write
/// their own disjoint part of it (the users say which).
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub *mut f32);
// SAFETY: the tasks that share it write disjoint elements (each user's contract).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer `offset` values on (a method, so closures capture the `Send` wrapper, not
    /// its field).
    pub fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}
