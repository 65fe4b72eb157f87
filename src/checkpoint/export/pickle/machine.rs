//! The machine's state and the moves every opcode is made of: reading the input, the stack,
//! marks and memo.

use std::collections::HashMap;

use super::{Id, Value, kind};

pub(super) struct Machine<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
    pub(super) values: Vec<Value>,
    pub(super) stack: Vec<Id>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u64, Id>,
}

pub(super) type Step<T> = Result<T, String>;

impl Machine<'_> {
    pub(super) fn take(&mut self, n: usize) -> Step<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or("the pickle ends early")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(super) fn uint(&mut self, n: usize) -> Step<u64> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }
    pub(super) fn line(&mut self) -> Step<String> {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("a line without its end")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
    pub(super) fn text(&mut self, n: usize) -> Step<Value> {
        let b = self.take(n)?;
        Ok(Value::Str(
            String::from_utf8(b.to_vec()).map_err(|_| "a string that is not UTF-8")?,
        ))
    }
    pub(super) fn push(&mut self, v: Value) {
        self.values.push(v);
        self.stack.push(self.values.len() - 1);
    }
    pub(super) fn pop(&mut self) -> Step<Id> {
        self.stack
            .pop()
            .ok_or_else(|| "the stack is empty".to_string())
    }
    pub(super) fn top(&self) -> Step<Id> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "the stack is empty".to_string())
    }
    pub(super) fn pop_mark(&mut self) -> Step<Vec<Id>> {
        let at = self.marks.pop().ok_or("no mark")?;
        if at > self.stack.len() {
            return Err("a mark above the stack".into());
        }
        Ok(self.stack.split_off(at))
    }
    pub(super) fn memo_get(&mut self, key: u64) -> Step<()> {
        let id = *self
            .memo
            .get(&key)
            .ok_or(format!("memo {key} was never put"))?;
        self.stack.push(id);
        Ok(())
    }
    pub(super) fn int(n: i64) -> Value {
        Value::Int(n)
    }
    pub(super) fn long(bytes: &[u8]) -> Value {
        if bytes.len() <= 8 {
            let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut b = [fill; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            Value::Int(i64::from_le_bytes(b))
        } else {
            Value::BigInt(bytes.to_vec())
        }
    }
    pub(super) fn call(&mut self, callable: Id, args: Id) {
        self.push(Value::Call {
            callable,
            args,
            state: None,
            items: Vec::new(),
            entries: Vec::new(),
        });
    }
    pub(super) fn append(&mut self, target: Id, new: Vec<Id>) -> Step<()> {
        match &mut self.values[target] {
            Value::List(v) | Value::Set(v) | Value::Call { items: v, .. } => v.extend(new),
            other => return Err(format!("appending to {}", kind(other))),
        }
        Ok(())
    }
    pub(super) fn set_items(&mut self, target: Id, kv: Vec<Id>) -> Step<()> {
        if !kv.len().is_multiple_of(2) {
            return Err("a key without its value".into());
        }
        let pairs = kv.chunks(2).map(|p| (p[0], p[1]));
        match &mut self.values[target] {
            Value::Dict(d) | Value::Call { entries: d, .. } => d.extend(pairs),
            other => return Err(format!("setting items of {}", kind(other))),
        }
        Ok(())
    }
}
