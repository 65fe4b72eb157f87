//! Walking a parsed pickle as Python objects: an object's class and attributes, strings, ints and
//! lists, and the PyTorch parts — tensors from their storages, and a module's `state_dict()`.

use std::collections::BTreeMap;

use super::pickle::{Id, Pickle, Value};
use crate::params::HostTensor;

/// A parsed pickle and the storages its tensors name (`data/<key>` of a `torch.save` zip).
pub struct Objects {
    pub pickle: Pickle,
    pub storages: BTreeMap<String, Vec<u8>>,
}

impl Objects {
    fn v(&self, id: Id) -> &Value {
        self.pickle.get(id)
    }

    /// `module.name` of an object's class (`NEWOBJ` / `REDUCE` of a global, or copyreg's
    /// `_reconstructor(cls, base, state)`).
    pub fn class(&self, id: Id) -> Option<String> {
        let Value::Call { callable, args, .. } = self.v(id) else {
            return None;
        };
        let name = self.global(*callable)?;
        if name == "copy_reg._reconstructor" || name == "copyreg._reconstructor" {
            return self.global(*self.items(*args)?.first()?);
        }
        Some(name)
    }

    /// `module.name` of a global.
    pub fn global(&self, id: Id) -> Option<String> {
        match self.v(id) {
            Value::Global { module, name } => Some(format!("{module}.{name}")),
            _ => None,
        }
    }

    /// An attribute of an object: its `BUILD` state's entry (a dict, or `(dict, slots)`).
    pub fn attr(&self, id: Id, name: &str) -> Option<Id> {
        let Value::Call { state: Some(s), .. } = self.v(id) else {
            return None;
        };
        let dict = match self.v(*s) {
            Value::Tuple(t) => *t.first()?,
            _ => *s,
        };
        self.entries(dict)?
            .iter()
            .find(|(k, _)| self.str(*k) == Some(name))
            .map(|&(_, v)| v)
    }

    /// A `torch.nn.Module`'s submodule (its `_modules` entry).
    pub fn child(&self, module: Id, name: &str) -> Option<Id> {
        let m = self.entries(self.attr(module, "_modules")?)?;
        m.iter()
            .find(|(k, _)| self.str(*k) == Some(name))
            .map(|&(_, v)| v)
    }

    pub fn str(&self, id: Id) -> Option<&str> {
        match self.v(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, id: Id) -> Option<i64> {
        match self.v(id) {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    pub fn float(&self, id: Id) -> Option<f64> {
        match self.v(id) {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// A sequence's items: a list, tuple or set, a list subclass, or fastcore's `L` (its `items`).
    pub fn items(&self, id: Id) -> Option<&[Id]> {
        match self.v(id) {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => Some(v),
            Value::Call { items, .. } if !items.is_empty() => Some(items),
            Value::Call { .. } => self.items(self.attr(id, "items")?),
            _ => None,
        }
    }

    /// Strings of a sequence (`None` if any item is not one).
    pub fn strings(&self, id: Id) -> Option<Vec<String>> {
        self.items(id)?
            .iter()
            .map(|&i| self.str(i).map(str::to_string))
            .collect()
    }

    /// A mapping's entries: a dict, or a dict subclass (`OrderedDict`).
    pub fn entries(&self, id: Id) -> Option<&[(Id, Id)]> {
        match self.v(id) {
            Value::Dict(d) | Value::Call { entries: d, .. } => Some(d),
            _ => None,
        }
    }

    /// Every object of class `module.name`, each once, in the pickle's order.
    pub fn all_of(&self, class: &str) -> Vec<Id> {
        (0..self.pickle.values.len())
            .filter(|&i| self.class(i).as_deref() == Some(class))
            .collect()
    }

    /// Every global the pickle names whose module starts with `prefix`, each once.
    pub fn globals_under(&self, prefix: &str) -> Vec<String> {
        let mut out: Vec<String> = (0..self.pickle.values.len())
            .filter_map(|i| self.global(i))
            .filter(|g| g.starts_with(prefix))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// A `torch.nn.Module`'s `state_dict()`: its parameters and persistent buffers, then its
    /// submodules' under `name.`, as PyTorch names them.
    pub fn state_dict(&self, module: Id) -> Result<BTreeMap<String, HostTensor>, String> {
        let mut out = BTreeMap::new();
        self.collect(module, "", &mut out)?;
        Ok(out)
    }

    fn collect(
        &self,
        module: Id,
        prefix: &str,
        out: &mut BTreeMap<String, HostTensor>,
    ) -> Result<(), String> {
        let transient: Vec<&str> = self
            .attr(module, "_non_persistent_buffers_set")
            .and_then(|s| self.items(s))
            .map(|s| s.iter().filter_map(|&i| self.str(i)).collect())
            .unwrap_or_default();
        for table in ["_parameters", "_buffers"] {
            let Some(entries) = self.attr(module, table).and_then(|t| self.entries(t)) else {
                continue;
            };
            for &(k, v) in entries {
                let name = self.str(k).ok_or("a parameter without a name")?;
                if matches!(self.v(v), Value::None) || transient.contains(&name) {
                    continue;
                }
                let path = format!("{prefix}{name}");
                let t = self.tensor(v).map_err(|e| format!("`{path}`: {e}"))?;
                out.insert(path, t);
            }
        }
        if let Some(children) = self.attr(module, "_modules").and_then(|m| self.entries(m)) {
            for &(k, child) in children {
                let name = self.str(k).ok_or("a submodule without a name")?;
                if !matches!(self.v(child), Value::None) {
                    self.collect(child, &format!("{prefix}{name}."), out)?;
                }
            }
        }
        Ok(())
    }

    /// A tensor: `_rebuild_parameter(tensor, ...)`, `_rebuild_tensor_v2(storage, offset, size,
    /// stride, ...)` (strided views gathered), or `_rebuild_from_type_v2(func, type, args, ...)`.
    pub fn tensor(&self, id: Id) -> Result<HostTensor, String> {
        let Value::Call { callable, args, .. } = self.v(id) else {
            return Err("not a tensor".into());
        };
        let f = self.global(*callable).unwrap_or_default();
        self.rebuild(&f, self.items(*args).ok_or("a call without arguments")?)
    }

    fn rebuild(&self, f: &str, args: &[Id]) -> Result<HostTensor, String> {
        let arg = |i: usize| {
            args.get(i)
                .copied()
                .ok_or(format!("{f}: too few arguments"))
        };
        match f {
            "torch._utils._rebuild_parameter" => self.tensor(arg(0)?),
            "torch._tensor._rebuild_from_type_v2" => {
                let inner = self.global(arg(0)?).ok_or("no function")?;
                self.rebuild(&inner, self.items(arg(2)?).ok_or("no arguments")?)
            }
            "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
                let ints = |i: usize| -> Result<Vec<usize>, String> {
                    let items = self.items(arg(i)?).ok_or("a size that is not a tuple")?;
                    items
                        .iter()
                        .map(|&x| self.int(x).map(|v| v as usize))
                        .collect::<Option<_>>()
                        .ok_or_else(|| "a size that is not an int".to_string())
                };
                let offset = self.int(arg(1)?).ok_or("an offset that is not an int")? as usize;
                let (shape, stride) = (ints(2)?, ints(3)?);
                let values = self.storage(arg(0)?)?;
                gather(&values, offset, &shape, &stride).map(|v| HostTensor::new(shape, v))
            }
            other => Err(format!("`{other}` does not build a tensor awd reads")),
        }
    }

    /// A storage's values as f32: the persistent id `('storage', torch.FloatStorage, key, ...)`.
    fn storage(&self, id: Id) -> Result<Vec<f32>, String> {
        let Value::Persistent(pid) = self.v(id) else {
            return Err("a tensor without a storage".into());
        };
        let parts = self.items(*pid).ok_or("a storage id that is not a tuple")?;
        let (Some(&kind), Some(&key)) = (parts.get(1), parts.get(2)) else {
            return Err("a short storage id".into());
        };
        let kind = self.global(kind).ok_or("a storage of no type")?;
        let key = self.str(key).ok_or("a storage key that is not a string")?;
        let bytes = self
            .storages
            .get(key)
            .ok_or(format!("storage `{key}` is not in the archive"))?;
        let (width, read): (usize, fn(&[u8]) -> f32) = match kind.as_str() {
            "torch.FloatStorage" => (4, |c| f32::from_le_bytes(c.try_into().unwrap())),
            "torch.DoubleStorage" => (8, |c| f64::from_le_bytes(c.try_into().unwrap()) as f32),
            "torch.LongStorage" => (8, |c| i64::from_le_bytes(c.try_into().unwrap()) as f32),
            "torch.IntStorage" => (4, |c| i32::from_le_bytes(c.try_into().unwrap()) as f32),
            other => {
                return Err(format!(
                    "a `{other}`: awd reads float32, float64 and integer tensors"
                ));
            }
        };
        Ok(bytes.chunks_exact(width).map(read).collect())
    }
}

/// The elements of a strided view of `values`, in row-major order.
fn gather(
    values: &[f32],
    offset: usize,
    shape: &[usize],
    stride: &[usize],
) -> Result<Vec<f32>, String> {
    if shape.len() != stride.len() {
        return Err("size and stride differ in length".into());
    }
    let n: usize = shape.iter().product();
    let last = offset
        + shape
            .iter()
            .zip(stride)
            .map(|(&s, &st)| s.saturating_sub(1) * st)
            .sum::<usize>();
    if n > 0 && last >= values.len() {
        return Err(format!(
            "the view reaches element {last} of a storage of {}",
            values.len()
        ));
    }
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..n {
        let at = offset
            + index
                .iter()
                .zip(stride)
                .map(|(&i, &s)| i * s)
                .sum::<usize>();
        out.push(values[at]);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}
