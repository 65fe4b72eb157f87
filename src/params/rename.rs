//! Modules whose parameters are addressed by names other than their Rust field layout.
//!
//! Burn names a parameter by the path of fields leading to it (`layers.0.weight_hh`). PyTorch and
//! fastai use flat names (`weight_hh_l0`, `weight_hh_l0_raw`). A module declared with
//! [`renamed_module!`](crate::renamed_module) keeps its parameters in an ordinary derived struct and shows every
//! traversal (records, path selection, the audit) the names its [`PathRenamer`] gives, so there is
//! one naming everywhere and no translation table to keep in step.

use burn::module::{Flag, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Bool, Int, Tensor};

/// Maps the path of a parameter inside a module (field names, Vec indices) to its public path.
pub trait PathRenamer {
    fn rename(&self, inner: &[String]) -> Vec<String>;
}

/// Wraps a visitor: swallows the inner structure's enter/exit calls and presents each leaf under
/// its renamed path.
pub struct RenameVisitor<'a, V, R> {
    pub inner: &'a mut V,
    pub renamer: &'a R,
    pub stack: Vec<String>,
}

/// Wraps a mapper in the same way as [`RenameVisitor`].
pub struct RenameMapper<'a, M, R> {
    pub inner: &'a mut M,
    pub renamer: &'a R,
    pub stack: Vec<String>,
}

macro_rules! leaf {
    ($self:ident, $call:expr) => {{
        let names = $self.renamer.rename(&$self.stack);
        for n in &names {
            $self.inner.enter_module(n, "Struct");
        }
        let out = $call;
        for n in names.iter().rev() {
            $self.inner.exit_module(n, "Struct");
        }
        out
    }};
}

impl<V: ModuleVisitor, R: PathRenamer> ModuleVisitor for RenameVisitor<'_, V, R> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        leaf!(self, self.inner.visit_float(param))
    }
    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        leaf!(self, self.inner.visit_int(param))
    }
    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        leaf!(self, self.inner.visit_bool(param))
    }
    fn visit_flag(&mut self, flag: &Param<Flag>) {
        leaf!(self, self.inner.visit_flag(flag))
    }
}

impl<M: ModuleMapper, R: PathRenamer> ModuleMapper for RenameMapper<'_, M, R> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        leaf!(self, self.inner.map_float(param))
    }
    fn map_int<const D: usize>(&mut self, param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        leaf!(self, self.inner.map_int(param))
    }
    fn map_bool<const D: usize>(
        &mut self,
        param: Param<Tensor<D, Bool>>,
    ) -> Param<Tensor<D, Bool>> {
        leaf!(self, self.inner.map_bool(param))
    }
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        leaf!(self, self.inner.map_flag(flag))
    }
}

/// Implements [`burn::module::Module`] (and its display traits) for `$ty`, whose trainable state
/// lives in the derived module field `$field`, presenting its paths through `$renamer(&self)`.
/// Every other field of `$ty` is configuration, carried along unchanged.
#[macro_export]
#[doc(hidden)]
macro_rules! renamed_module {
    ($ty:ident $(<$g:ident : $bound:path>)?, $field:ident, $renamer:expr) => {
        // `..self` carries the other fields; a type with none has nothing to carry.
        #[allow(clippy::needless_update)]
        impl$(<$g: $bound>)? burn::module::Module for $ty$(<$g>)? {
            fn collect_devices(&self, devices: burn::module::Devices) -> burn::module::Devices {
                self.$field.collect_devices(devices)
            }
            fn fork(self, device: &burn::tensor::Device) -> Self {
                Self { $field: self.$field.fork(device), ..self }
            }
            fn to_device(self, device: &burn::tensor::Device) -> Self {
                Self { $field: self.$field.to_device(device), ..self }
            }
            fn train(self) -> Self {
                Self { $field: self.$field.train(), ..self }
            }
            fn valid(&self) -> Self {
                Self { $field: self.$field.valid(), ..self.clone() }
            }
            fn materialize(self) -> Self {
                Self { $field: self.$field.materialize(), ..self }
            }
            fn visit<V: burn::module::ModuleVisitor>(&self, visitor: &mut V) {
                #[allow(clippy::redundant_closure_call)]
                let renamer = ($renamer)(self);
                let mut v = $crate::params::rename::RenameVisitor {
                    inner: visitor,
                    renamer: &renamer,
                    stack: Vec::new(),
                };
                self.$field.visit(&mut v);
            }
            fn map<Mp: burn::module::ModuleMapper>(self, mapper: &mut Mp) -> Self {
                #[allow(clippy::redundant_closure_call)]
                let renamer = ($renamer)(&self);
                let mut m = $crate::params::rename::RenameMapper {
                    inner: mapper,
                    renamer: &renamer,
                    stack: Vec::new(),
                };
                Self { $field: self.$field.map(&mut m), ..self }
            }
        }

        impl$(<$g: $bound>)? core::fmt::Display for $ty$(<$g>)? {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Display::fmt(&self.$field, f)
            }
        }

        impl$(<$g: $bound>)? burn::module::ModuleDisplayDefault for $ty$(<$g>)? {
            fn content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
                self.$field.content(content)
            }
            fn num_params(&self) -> usize {
                burn::module::Module::num_params(self)
            }
        }

        impl$(<$g: $bound>)? burn::module::ModuleDisplay for $ty$(<$g>)? {}
    };
}
