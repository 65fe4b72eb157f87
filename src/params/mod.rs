//! Parameters by name: paths, host copies of values and gradients, and loading values by name.
//!
//! Paths are the ones every traversal of the module sees (PyTorch/fastai names for awd's own
//! modules), so the same names serve checkpoints, parity tests, path selection and the audit.

pub mod groups;
pub mod rename;

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Gradients, Tensor, TensorData};

use crate::error::{AwdError, Result};

/// A float tensor on the host: what checkpoints and parity checks exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, values: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Self { shape, values }
    }

    pub fn from_tensor<const D: usize>(t: Tensor<D>) -> Self {
        Self::from_data(t.into_data())
    }

    pub fn from_data(data: TensorData) -> Self {
        let shape = data.shape().to_vec();
        let values = data
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32 above");
        Self { shape, values }
    }

    pub fn to_tensor<const D: usize>(&self, device: &burn::tensor::Device) -> Result<Tensor<D>> {
        if self.shape.len() != D {
            return Err(AwdError::Shape(format!(
                "a rank-{D} tensor was expected, got shape {:?}",
                self.shape
            )));
        }
        Ok(Tensor::from_data(
            TensorData::new(self.values.clone(), self.shape.clone()),
            device,
        ))
    }

    /// The Euclidean norm.
    pub fn norm(&self) -> f64 {
        self.values
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt()
    }
}

/// Visits every float parameter with its path (`0.rnns.0.weight_hh_l0_raw`).
pub trait ParamVisitor {
    fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>);
}

/// Maps every float parameter, knowing its path.
pub trait ParamMapper {
    fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>>;
}

/// Burn's traversal, with the path of each parameter kept for it.
struct WithPaths<'a, V> {
    inner: &'a mut V,
    stack: Vec<String>,
}

impl<V: ParamVisitor> ModuleVisitor for WithPaths<'_, V> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.inner.visit(&self.stack.join("."), param);
    }
}

impl<V: ParamMapper> ModuleMapper for WithPaths<'_, V> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.inner.map(&self.stack.join("."), param)
    }
}

/// Calls `visitor` with every float parameter of `module` and its path, in visit order.
pub fn visit_params<M: Module, V: ParamVisitor>(module: &M, visitor: &mut V) {
    module.visit(&mut WithPaths {
        inner: visitor,
        stack: Vec::new(),
    });
}

/// `module` with every float parameter passed through `mapper`.
pub fn map_params<M: Module, V: ParamMapper>(module: M, mapper: &mut V) -> M {
    module.map(&mut WithPaths {
        inner: mapper,
        stack: Vec::new(),
    })
}

/// The paths of the float parameters of `module`, in visit order.
pub fn param_paths<M: Module>(module: &M) -> Vec<String> {
    struct Paths(Vec<String>);
    impl ParamVisitor for Paths {
        fn visit<const D: usize>(&mut self, path: &str, _: &Param<Tensor<D>>) {
            self.0.push(path.to_string());
        }
    }
    let mut p = Paths(Vec::new());
    visit_params(module, &mut p);
    p.0
}

/// Every float parameter's path and id, in visit order.
pub fn param_ids_by_path<M: Module>(module: &M) -> Vec<(String, burn::module::ParamId)> {
    struct Ids(Vec<(String, burn::module::ParamId)>);
    impl ParamVisitor for Ids {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            self.0.push((path.to_string(), param.id));
        }
    }
    let mut ids = Ids(Vec::new());
    visit_params(module, &mut ids);
    ids.0
}

/// Host copies of the values (`grads: None`) or of the gradients of every parameter.
struct Collect<'g> {
    grads: Option<&'g Gradients>,
    out: Vec<(String, Option<HostTensor>)>,
}

impl ParamVisitor for Collect<'_> {
    fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
        let value = param.val();
        let host = match self.grads {
            None => Some(HostTensor::from_tensor(value)),
            Some(grads) => value.grad(grads).map(HostTensor::from_tensor),
        };
        self.out.push((path.to_string(), host));
    }
}

/// Host copies of every float parameter, by path.
pub fn named_values<M: Module>(module: &M) -> Vec<(String, HostTensor)> {
    let mut c = Collect {
        grads: None,
        out: Vec::new(),
    };
    visit_params(module, &mut c);
    c.out
        .into_iter()
        .map(|(k, v)| (k, v.expect("values are always present")))
        .collect()
}

/// The gradient of every float parameter, by path (`None`: no gradient reached it).
pub fn named_grads<M: Module>(module: &M, grads: &Gradients) -> Vec<(String, Option<HostTensor>)> {
    let mut c = Collect {
        grads: Some(grads),
        out: Vec::new(),
    };
    visit_params(module, &mut c);
    c.out
}

struct Load<'a> {
    values: &'a BTreeMap<String, HostTensor>,
    problems: Vec<String>,
}

impl ParamMapper for Load<'_> {
    fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(host) = self.values.get(path) else {
            self.problems.push(format!("{path}: missing"));
            return param;
        };
        let expected = param.shape().to_vec();
        if host.shape != expected {
            self.problems.push(format!(
                "{path}: shape {:?}, the model needs {expected:?}",
                host.shape
            ));
            return param;
        }
        param.map(|old| {
            let device = old.device();
            let require_grad = old.is_require_grad();
            let t: Tensor<D> = host.to_tensor(&device).expect("rank checked above");
            if require_grad { t.require_grad() } else { t }
        })
    }
}

/// Replaces every float parameter's value by the tensor of the same path in `values`, keeping
/// parameter ids. Missing paths and shape mismatches are reported together, by path.
pub fn load_values<M: Module>(module: M, values: &BTreeMap<String, HostTensor>) -> Result<M> {
    let mut l = Load {
        values,
        problems: Vec::new(),
    };
    let module = map_params(module, &mut l);
    if l.problems.is_empty() {
        Ok(module)
    } else {
        Err(AwdError::Shape(l.problems.join("; ")))
    }
}
