//! A fully connected layer in PyTorch's layout (`weight` `[out, in]`, `bias` `[out]`).

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

/// Configuration of a [`Linear`] layer.
#[derive(Debug, Clone)]
pub struct LinearConfig {
    pub d_input: usize,
    pub d_output: usize,
    pub bias: bool,
}

impl LinearConfig {
    pub fn new(d_input: usize, d_output: usize) -> Self {
        Self {
            d_input,
            d_output,
            bias: true,
        }
    }

    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Initialized as PyTorch does: U(-k, k), k = 1/sqrt(d_input).
    pub fn init(&self, device: &Device) -> Linear {
        let k = 1.0 / (self.d_input as f64).sqrt();
        let dist = Distribution::Uniform(-k, k);
        Linear {
            weight: Param::from_tensor(Tensor::random([self.d_output, self.d_input], dist, device)),
            bias: self
                .bias
                .then(|| Param::from_tensor(Tensor::random([self.d_output], dist, device))),
        }
    }
}

/// `y = x W^T + b`.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_output, d_input]`
    pub weight: Param<Tensor<2>>,
    /// `[d_output]`
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// `input`: `[..., d_input]` → `[..., d_output]`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        linear(
            input,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
        )
    }
}

/// `input` `[..., in]`, `weight` `[out, in]`, `bias` `[out]` → `[..., out]`.
pub fn linear<const D: usize>(
    input: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    // Burn's `module::linear` reshapes the transposed weight to add a batch dimension, which
    // copies it (a strided `[in, out]` copy of the whole weight on every call: most of the time
    // of batch-1 generation). Flattening the input instead keeps the weight a strided view.
    let dims = input.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let mut out = input.reshape([rows, d_in]).matmul(weight.transpose());
    if let Some(bias) = bias {
        out = out + bias.unsqueeze::<2>();
    }
    let mut out_dims = dims;
    out_dims[D - 1] = out.dims()[1];
    out.reshape(out_dims)
}
