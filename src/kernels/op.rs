//! The plumbing every fused kernel shares: which implementation runs ([`Impl`], decided here
//! alone), tensors lowered to the flex backend with or without autodiff ([`Lowered`]), one
//! skeleton that runs a kernel as a Burn autodiff operation or as a plain one ([`fused_op`]),
//! and host buffers.

use burn::tensor::{Tensor, TensorData};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::ops::{Backward, OpsKind};
use burn_backend::BackendTypes;
use burn_flex::{Flex, FlexTensor};

type Ad = Autodiff<Flex>;
type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

/// Which implementation computes the LSTM layers and the decoder's loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Impl {
    /// The fused kernels where the tensors are on the flex backend (the only backend that has
    /// them), the reference ops elsewhere.
    #[default]
    Fused,
    /// The reference ops everywhere: the oracle the fused kernels are tested against.
    Reference,
}

impl Impl {
    /// Whether the fused kernel runs on `t` (and the tensors that go with it).
    pub fn fused_for<const D: usize>(self, t: &Tensor<D>) -> bool {
        self == Impl::Fused && Lowered::new(t.clone()).is_some()
    }
}

/// A float tensor on the flex backend: tracked by autodiff, or plain.
pub(crate) enum Lowered {
    Tracked(AdTensor),
    Plain(FlexTensor),
}

impl Lowered {
    /// `None` when `t` is on another backend.
    pub fn new<const D: usize>(t: Tensor<D>) -> Option<Self> {
        if t.is_autodiff() {
            t.try_into_primitive::<Ad>().ok().map(Lowered::Tracked)
        } else {
            t.try_into_primitive::<Flex>().ok().map(Lowered::Plain)
        }
    }

    /// [`Lowered::new`] for tensors [`Impl::fused_for`] has accepted.
    pub fn of<const D: usize>(t: Tensor<D>) -> Self {
        Self::new(t).expect("fused kernels run on flex tensors (Impl::fused_for checks)")
    }

    pub fn flex(&self) -> &FlexTensor {
        match self {
            Lowered::Tracked(t) => t.primitive(),
            Lowered::Plain(t) => t,
        }
    }

    /// A flex value of the same kind (a tracked constant beside tracked inputs).
    pub fn like(&self, value: FlexTensor) -> Self {
        match self {
            Lowered::Tracked(_) => Lowered::Tracked(AdTensor::new(value)),
            Lowered::Plain(_) => Lowered::Plain(value),
        }
    }

    pub fn tensor<const D: usize>(self) -> Tensor<D> {
        match self {
            Lowered::Tracked(t) => Tensor::from_primitive::<Ad>(t),
            Lowered::Plain(t) => Tensor::from_primitive::<Flex>(t),
        }
    }
}

/// Runs a fused kernel on `inputs` (its graph parents). `forward` gets their flex values and
/// whether a backward will follow, and returns the output with, when it will, the state `bw`
/// needs. With tracked inputs the output is one autodiff node whose backward is `bw`.
pub(crate) fn fused_op<B, const N: usize>(
    bw: B,
    inputs: [Lowered; N],
    forward: impl FnOnce([&FlexTensor; N], bool) -> (Option<B::State>, FlexTensor),
) -> Lowered
where
    B: Backward<Flex, N>,
{
    let values = inputs.each_ref().map(Lowered::flex);
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
    let lowered = Lowered::new(t.clone())?;
    Some(super::math::sum_squares(&Buf::from_flex(lowered.flex())))
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
