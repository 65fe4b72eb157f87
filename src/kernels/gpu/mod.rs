//! The fused kernels on the GPU (the `wgpu` feature): the same operations as the CPU kernels,
//! behind the same functions ([`super::lstm_op::lstm_sequence`],
//! [`super::decoder_ce::decoder_cross_entropy`]), on Burn's cubecl backend.
//!
//! - [`lstm`]: a weight-dropped LSTM direction over a window as one autodiff op: the window's
//!   input projection in one matmul; per timestep one recurrent matmul and one CubeCL kernel for
//!   the gate non-linearities and the cell update, and their counterpart in the backward; the
//!   weight gradients in three window-wide matmuls.
//! - [`decoder`]: logits in one matmul, then one CubeCL kernel per row block for the softmax,
//!   the cross-entropy and the logits' gradient.
//!
//! The kernels compute in f32 (`--precision bf16` is a CPU path). Burn's matmul, reshapes and
//! sums are used as they are, on plain (untracked) tensors inside the ops.

pub mod decoder;
pub mod lstm;

use burn::tensor::{Shape, Tensor};
pub use burn_cubecl::Cube;
use burn_cubecl::cubecl::prelude::ElemType;
use burn_cubecl::cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;

/// A GPU value with Burn's tensor API (untracked: the ops' own backward does the gradients).
fn tensor<const D: usize>(p: CubeTensor) -> Tensor<D> {
    Tensor::from_primitive::<Cube>(p)
}

/// The GPU value of a plain tensor made from GPU values, laid out row-major for the kernels.
fn value<const D: usize>(t: Tensor<D>) -> CubeTensor {
    into_contiguous(
        t.try_into_primitive::<Cube>()
            .expect("the GPU ops compute on the GPU's tensors"),
    )
}

/// A new uninitialized row-major tensor of `shape` on `like`'s device, of its dtype.
fn empty(like: &CubeTensor, shape: &[usize]) -> CubeTensor {
    empty_device_dtype(
        like.client.clone(),
        like.device.clone(),
        Shape::from(shape.to_vec()),
        like.dtype,
    )
}

/// The launch shape of an element-wise kernel over `n` units.
fn elementwise(like: &CubeTensor, n: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(&like.client, n);
    (calculate_cube_count_elemwise(&like.client, n, dim), dim)
}

/// The kernels' element type: that of the tensors they are given (f32).
fn elem(like: &CubeTensor) -> ElemType {
    burn_backend::cubecl::dtype_to_storage_type(like.dtype)
}
