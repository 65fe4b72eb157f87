//! A regular expression with Python `re`'s search semantics over Rust's automata: spaCy's
//! patterns are long alternations, a few alternatives with lookarounds (which only the
//! backtracking fancy-regex runs), most without.

use fancy_regex::Regex;

/// One of spaCy's patterns: an alternation, searched as Python's `re` does (the leftmost match,
/// and at that position the first alternative that matches), but fast: a `RegexSet` of the
/// alternatives with their lookarounds removed (each matches wherever its alternative does) says
/// which alternatives can match at all, and only those are run, most as plain automata.
pub struct Pattern {
    alts: Vec<Alt>,
    maybe: regex::RegexSet,
}

enum Alt {
    Plain(regex::Regex),
    Fancy(Regex),
}

impl Pattern {
    pub fn new(p: &str) -> Pattern {
        let pieces = alternatives(p);
        let stripped: Vec<String> = pieces.iter().map(|a| without_lookarounds(a)).collect();
        let alts = pieces
            .iter()
            .zip(&stripped)
            .map(|(a, s)| {
                if a == s {
                    Alt::Plain(regex::Regex::new(a).expect("spaCy's patterns compile"))
                } else {
                    Alt::Fancy(Regex::new(a).expect("spaCy's patterns compile"))
                }
            })
            .collect();
        Pattern {
            alts,
            maybe: regex::RegexSet::new(&stripped).expect("spaCy's patterns compile"),
        }
    }

    /// The first match starting at or after `pos` (Python's `re.search` from `pos`).
    pub fn find_at(&self, s: &str, pos: usize) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for i in self.maybe.matches_at(s, pos).iter() {
            let m = match &self.alts[i] {
                Alt::Plain(re) => re.find_at(s, pos).map(|m| (m.start(), m.end())),
                Alt::Fancy(re) => re
                    .find_from_pos(s, pos)
                    .ok()
                    .flatten()
                    .map(|m| (m.start(), m.end())),
            };
            // Alternatives come in order: a later one wins only by starting earlier.
            if let Some(m) = m
                && best.is_none_or(|b| m.0 < b.0)
            {
                best = Some(m);
            }
        }
        best
    }

    pub fn find(&self, s: &str) -> Option<(usize, usize)> {
        self.find_at(s, 0)
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.find(s).is_some()
    }

    /// Every match, left to right, not overlapping (Python's `re.finditer`).
    pub fn find_iter(&self, s: &str) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let mut pos = 0;
        while pos <= s.len() {
            let Some((a, b)) = self.find_at(s, pos) else {
                break;
            };
            found.push((a, b));
            pos = if b > a {
                b
            } else {
                b + s[b..].chars().next().map_or(1, char::len_utf8)
            };
        }
        found
    }
}

/// The bytes of `p` that are syntax, `(index, byte)`: escapes and character classes skipped (a
/// `]` first in a class, or after its `^`, is a literal).
fn syntax(p: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let b = p.as_bytes();
    let (mut i, mut in_class) = (0, false);
    std::iter::from_fn(move || {
        while i < b.len() {
            let at = i;
            i += 1;
            match b[at] {
                b'\\' => i += 1,
                b'[' if !in_class => {
                    in_class = true;
                    i += usize::from(b.get(i) == Some(&b'^'));
                    i += usize::from(b.get(i) == Some(&b']'));
                }
                b']' if in_class => in_class = false,
                _ if in_class => {}
                c => return Some((at, c)),
            }
        }
        None
    })
}

/// The top-level alternatives of `p` (split at `|` outside groups and classes).
fn alternatives(p: &str) -> Vec<String> {
    let (mut depth, mut from, mut out) = (0usize, 0, Vec::new());
    for (i, c) in syntax(p) {
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'|' if depth == 0 => {
                out.push(p[from..i].to_string());
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(p[from..].to_string());
    out
}

/// `p` with every `(?=…)`, `(?!…)`, `(?<=…)` and `(?<!…)` group removed.
fn without_lookarounds(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut copied = 0;
    for (i, c) in syntax(p) {
        if i >= copied
            && c == b'('
            && ["(?=", "(?!", "(?<=", "(?<!"]
                .iter()
                .any(|l| p[i..].starts_with(l))
        {
            out.push_str(&p[copied..i]);
            copied = group_end(p, i);
        }
    }
    out.push_str(&p[copied..]);
    out
}

/// The index after the group opening at `start`.
fn group_end(p: &str, start: usize) -> usize {
    let mut depth = 0usize;
    for (i, c) in syntax(&p[start..]) {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return start + i + 1;
                }
            }
            _ => {}
        }
    }
    p.len()
}
