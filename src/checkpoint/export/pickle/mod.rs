//! A pickle machine that builds plain values and never calls anything.
//!
//! Every opcode of protocols 0–5 that a `torch.save`d object uses is read into an arena of
//! [`Value`]s: a global is its module and name, a call (`REDUCE`, `NEWOBJ`, `INST`, `OBJ`) is
//! "callable + arguments", and `BUILD` attaches its state to the object it builds, so a fastai
//! `Learner` becomes a tree that can be walked, with nothing in it run.

mod machine;
mod opcodes;

use std::collections::HashMap;

use machine::Machine;

/// A value's place in the arena.
pub type Id = usize;

/// One pickled value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for `i64` (its little-endian two's-complement bytes).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    /// `module.name`, never imported.
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)`, never called; `BUILD`'s state, and the items `APPENDS` / `SETITEMS`
    /// added to it (a list or dict subclass), kept beside it.
    Call {
        callable: Id,
        args: Id,
        state: Option<Id>,
        items: Vec<Id>,
        entries: Vec<(Id, Id)>,
    },
    /// A persistent id (`torch.save` names its storages so).
    Persistent(Id),
}

/// A parsed pickle: the arena and the value `STOP` returned.
#[derive(Debug)]
pub struct Pickle {
    pub values: Vec<Value>,
    pub root: Id,
}

impl Pickle {
    pub fn get(&self, id: Id) -> &Value {
        &self.values[id]
    }
}

/// Parses `bytes`; an error names the opcode and offset where reading stopped.
pub fn parse(bytes: &[u8]) -> Result<Pickle, String> {
    let mut m = Machine {
        bytes,
        pos: 0,
        values: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.run().map_err(|e| format!("pickle byte {}: {e}", m.pos))?;
    Ok(Pickle {
        values: m.values,
        root,
    })
}

/// What a value is, in a few words for an error.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::Int(_) | Value::BigInt(_) => "an int",
        Value::Float(_) => "a float",
        Value::Str(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "a tuple",
        Value::List(_) => "a list",
        Value::Dict(_) => "a dict",
        Value::Set(_) => "a set",
        Value::Global { .. } => "a global",
        Value::Call { .. } => "an object",
        Value::Persistent(_) => "a persistent id",
    }
}
