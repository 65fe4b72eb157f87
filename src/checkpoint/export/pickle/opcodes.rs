//! One opcode at a time, protocols 0 to 5: what each pushes, pops or changes.

use super::Value;
use super::machine::{Machine, Step};
use super::{Id, kind};

impl Machine<'_> {
    pub(super) fn run(&mut self) -> Step<Id> {
        loop {
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    self.take(1)?;
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => self.stack.push(self.top()?),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.push(Self::int(v as i64))
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.push(Self::int(v as i64))
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.push(Self::int(v as i64))
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.uint(1)?
                    } else {
                        self.uint(4)?
                    } as usize;
                    let v = Self::long(self.take(n)?);
                    self.push(v)
                }
                b'I' | b'L' => {
                    let l = self.line()?;
                    let t = l.trim_end_matches('L');
                    let v = match t {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(t.parse().map_err(|_| format!("a bad integer `{l}`"))?),
                    };
                    self.push(v)
                }
                b'G' => {
                    let b: [u8; 8] = self.take(8)?.try_into().expect("eight bytes");
                    self.push(Value::Float(f64::from_be_bytes(b)))
                }
                b'F' => {
                    let l = self.line()?;
                    self.push(Value::Float(
                        l.parse().map_err(|_| format!("a bad float `{l}`"))?,
                    ))
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.uint(4)?,
                        0x8c => self.uint(1)?,
                        _ => self.uint(8)?,
                    } as usize;
                    let v = self.text(n)?;
                    self.push(v)
                }
                b'V' => {
                    let l = self.line()?;
                    self.push(Value::Str(l))
                }
                b'S' => {
                    let l = self.line()?;
                    self.push(Value::Str(
                        l.trim_matches(|c| c == '\'' || c == '"').to_string(),
                    ))
                }
                b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'T' | b'B' => self.uint(4)?,
                        b'U' | b'C' => self.uint(1)?,
                        _ => self.uint(8)?,
                    } as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))
                }
                b')' => self.push(Value::Tuple(Vec::new())),
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("a tuple longer than the stack".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Value::Tuple(items))
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items))
                }
                b']' => self.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items))
                }
                b'}' => self.push(Value::Dict(Vec::new())),
                b'd' => {
                    let d = Value::Dict(Vec::new());
                    let items = self.pop_mark()?;
                    self.push(d);
                    self.set_items(self.top()?, items)?;
                }
                0x8f => self.push(Value::Set(Vec::new())),
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::Set(items))
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(self.top()?, vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.append(self.top()?, items)?;
                }
                b's' => {
                    let (v, k) = (self.pop()?, self.pop()?);
                    self.set_items(self.top()?, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(self.top()?, items)?;
                }
                b'c' => {
                    let (module, name) = (self.line()?, self.line()?);
                    self.push(Value::Global { module, name })
                }
                0x93 => {
                    let (name, module) = (self.pop()?, self.pop()?);
                    let (Value::Str(module), Value::Str(name)) =
                        (self.values[module].clone(), self.values[name].clone())
                    else {
                        return Err("STACK_GLOBAL without two strings".into());
                    };
                    self.push(Value::Global { module, name })
                }
                b'R' | 0x81 => {
                    let (args, callable) = (self.pop()?, self.pop()?);
                    self.call(callable, args)
                }
                0x92 => {
                    let (_kwargs, args, callable) = (self.pop()?, self.pop()?, self.pop()?);
                    self.call(callable, args)
                }
                b'i' => {
                    let (module, name) = (self.line()?, self.line()?);
                    let items = self.pop_mark()?;
                    self.values.push(Value::Global { module, name });
                    let callable = self.values.len() - 1;
                    self.values.push(Value::Tuple(items));
                    self.call(callable, self.values.len() - 1)
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err("OBJ without a class".into());
                    }
                    let callable = items.remove(0);
                    self.values.push(Value::Tuple(items));
                    self.call(callable, self.values.len() - 1)
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    match &mut self.values[target] {
                        Value::Call { state: s, .. } => *s = Some(state),
                        other => return Err(format!("BUILD on {}", kind(other))),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Value::Persistent(pid))
                }
                b'P' => {
                    let l = self.line()?;
                    self.values.push(Value::Str(l));
                    self.push(Value::Persistent(self.values.len() - 1))
                }
                b'p' => {
                    let key = self.line()?.parse().map_err(|_| "a bad memo key")?;
                    self.memo.insert(key, self.top()?);
                }
                b'q' | b'r' => {
                    let key = self.uint(if op == b'q' { 1 } else { 4 })?;
                    self.memo.insert(key, self.top()?);
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo.insert(key, self.top()?);
                }
                b'g' => {
                    let key = self.line()?.parse().map_err(|_| "a bad memo key")?;
                    self.memo_get(key)?
                }
                b'h' | b'j' => {
                    let key = self.uint(if op == b'h' { 1 } else { 4 })?;
                    self.memo_get(key)?
                }
                0x98 => {}
                other => {
                    return Err(format!(
                        "opcode 0x{other:02x} is not read (extension registry or out-of-band buffer)"
                    ));
                }
            }
        }
    }
}
