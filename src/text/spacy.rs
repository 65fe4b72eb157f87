//! spaCy's rule-based tokenizer (what `spacy.blank("en")` does, fastai's `WordTokenizer`), run over
//! spaCy's own English tables (`spacy_en.json`, written by `tests/vectors/make_spacy_tables.py`).
//!
//! The algorithm is spaCy 3.8's `Tokenizer.__call__`: split on whitespace (a single `' '` after a
//! token is that token's trailing space; any other run of whitespace is a token); each chunk is an
//! exception, or loses prefixes and suffixes until none is left (stopping early at an exception),
//! then what is left is an exception, a URL, or split at its infixes; last, runs of tokens with no
//! space between them that spell an exception containing affix characters are merged back into that
//! exception's tokens (spaCy's special-case matcher).

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::cell::RefCell;
use std::sync::OnceLock;

use serde::Deserialize;

use super::pattern::Pattern;

#[derive(Deserialize)]
struct Tables {
    prefix: String,
    suffix: String,
    infix: String,
    url: String,
    faster_heuristics: bool,
    exceptions: HashMap<String, Vec<String>>,
}

/// The compiled tables.
pub struct Spacy {
    prefix: Pattern,
    suffix: Pattern,
    infix: Pattern,
    url: Pattern,
    exceptions: HashMap<String, Vec<String>>,
    /// Exceptions spaCy's matcher looks for after tokenizing: their affix-only tokens, joined by
    /// `\u{1}`, to the exception's text.
    merges: HashMap<String, String>,
    /// Every leading run of a merge pattern's tokens, joined as `merges`' keys are: a run of
    /// tokens that is none of these can grow into no pattern.
    merge_prefixes: HashSet<String>,
}

/// Python's `str.isspace` (Rust's `char::is_whitespace` lacks the information separators).
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

const SEP: char = '\u{1}';

impl Spacy {
    /// spaCy's English tables, compiled once.
    pub fn english() -> &'static Spacy {
        static EN: OnceLock<Spacy> = OnceLock::new();
        EN.get_or_init(|| {
            let tables: Tables = serde_json::from_str(include_str!("spacy_en.json"))
                .expect("spacy_en.json is awd's own table");
            Spacy::new(tables)
        })
    }

    fn new(t: Tables) -> Spacy {
        let mut s = Spacy {
            prefix: Pattern::new(&t.prefix),
            suffix: Pattern::new(&t.suffix),
            infix: Pattern::new(&t.infix),
            url: Pattern::new(&t.url),
            exceptions: t.exceptions,
            merges: HashMap::default(),
            merge_prefixes: HashSet::default(),
        };
        // spaCy's `add_special_case`: an exception with affixes (or a space) is also matched
        // after tokenization, as the tokens the affix rules alone make of it.
        let mut merges = HashMap::default();
        for key in s.exceptions.keys() {
            let affixed = s.prefix_len(key) > 0
                || s.suffix_len(key) > 0
                || s.infix.is_match(key)
                || key.contains(' ');
            if affixed || !t.faster_heuristics {
                let mut pieces = Vec::new();
                s.tokenize_affixes(key, None, &mut pieces);
                for n in 1..=pieces.len() {
                    s.merge_prefixes
                        .insert(join(pieces[..n].iter().map(|p| p.text.as_str())));
                }
                merges.insert(join(pieces.iter().map(|p| p.text.as_str())), key.clone());
            }
        }
        s.merges = merges;
        s
    }

    fn prefix_len(&self, s: &str) -> usize {
        self.prefix.find(s).map_or(0, |(a, b)| b - a)
    }

    fn suffix_len(&self, s: &str) -> usize {
        self.suffix.find(s).map_or(0, |(a, b)| b - a)
    }

    /// The tokens of `text` (their texts; whitespace other than single spaces are tokens too).
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        // spaCy caches each chunk's tokens (the rules are a pure function of the chunk): one
        // cache a thread, exceptions included, borrowed for the whole text.
        thread_local! {
            static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
        }
        let mut pieces = Vec::with_capacity(text.len() / 4);
        CACHE.with(|c| {
            let mut cache = c.borrow_mut();
            if cache.len() >= 200_000 {
                cache.clear();
            }
            self.tokenize_affixes(text, Some(&mut cache), &mut pieces);
        });
        self.apply_merges(&mut pieces);
        pieces.into_iter().map(|p| p.text).collect()
    }

    /// spaCy's `_tokenize_affixes`: whitespace chunks, each split by the affix rules; exceptions
    /// apply when there is a cache (spaCy's `with_special_cases`).
    fn tokenize_affixes(&self, text: &str, mut cache: Option<&mut Cache>, out: &mut Vec<Piece>) {
        let Some(first) = text.chars().next() else {
            return;
        };
        let mut in_ws = py_isspace(first);
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if py_isspace(c) != in_ws {
                if start < i {
                    self.chunk(&text[start..i], cache.as_deref_mut(), out);
                }
                if c == ' ' {
                    if let Some(last) = out.last_mut() {
                        last.space = true;
                    }
                    start = i + 1;
                } else {
                    start = i;
                }
                in_ws = !in_ws;
            }
        }
        if start < text.len() {
            self.chunk(&text[start..], cache, out);
            if let Some(last) = out.last_mut() {
                last.space = text.ends_with(' ') && !in_ws;
            }
        }
    }

    /// One whitespace-delimited chunk: cached, an exception, or split afresh.
    fn chunk(&self, span: &str, cache: Option<&mut Cache>, out: &mut Vec<Piece>) {
        let Some(cache) = cache else {
            return self.split(span, false, out);
        };
        if let Some(hit) = cache.get(span) {
            out.extend(hit.iter().map(|t| Piece::new(t)));
            return;
        }
        let from = out.len();
        match self.exceptions.get(span) {
            Some(tokens) => out.extend(tokens.iter().map(|t| Piece::new(t))),
            None => self.split(span, true, out),
        }
        let tokens = out[from..].iter().map(|p| p.text.clone()).collect();
        cache.insert(span.to_string(), tokens);
    }

    /// spaCy's `_split_affixes` then `_attach_tokens`.
    fn split(&self, span: &str, specials: bool, out: &mut Vec<Piece>) {
        let special = |s: &str| specials && self.exceptions.contains_key(s);
        let mut prefixes: Vec<&str> = Vec::new();
        let mut suffixes: Vec<&str> = Vec::new();
        let mut s = span;
        let mut last_len = usize::MAX;
        while !s.is_empty() && s.len() != last_len {
            if special(s) {
                break;
            }
            last_len = s.len();
            let pre = self.prefix_len(s);
            if pre != 0 && s.len() > pre && special(&s[pre..]) {
                prefixes.push(&s[..pre]);
                s = &s[pre..];
                break;
            }
            let suf = self.suffix_len(&s[pre..]);
            if suf != 0 && s.len() > suf && special(&s[..s.len() - suf]) {
                suffixes.push(&s[s.len() - suf..]);
                s = &s[..s.len() - suf];
                break;
            }
            if pre != 0 && suf != 0 && pre + suf <= s.len() {
                prefixes.push(&s[..pre]);
                suffixes.push(&s[s.len() - suf..]);
                s = &s[pre..s.len() - suf];
            } else if pre != 0 {
                prefixes.push(&s[..pre]);
                s = &s[pre..];
            } else if suf != 0 {
                suffixes.push(&s[s.len() - suf..]);
                s = &s[..s.len() - suf];
            }
        }
        out.extend(prefixes.iter().map(|p| Piece::new(p)));
        if !s.is_empty() {
            if let Some(tokens) = self.exceptions.get(s).filter(|_| specials) {
                out.extend(tokens.iter().map(|t| Piece::new(t)));
            } else if self.url.is_match(s) {
                out.push(Piece::new(s));
            } else {
                self.split_infixes(s, out);
            }
        }
        out.extend(suffixes.iter().rev().map(|p| Piece::new(p)));
    }

    fn split_infixes(&self, s: &str, out: &mut Vec<Piece>) {
        let mut start = 0;
        for (a, b) in self.infix.find_iter(s) {
            // spaCy skips an infix at the very start of the string.
            if a == 0 {
                continue;
            }
            if a != start {
                out.push(Piece::new(&s[start..a]));
            }
            if a != b {
                out.push(Piece::new(&s[a..b]));
            }
            start = b;
        }
        if start < s.len() {
            out.push(Piece::new(&s[start..]));
        }
    }

    /// spaCy's `_apply_special_cases`: token runs that spell an affixed exception, longest first,
    /// become that exception's tokens when no space separates them.
    fn apply_merges(&self, pieces: &mut Vec<Piece>) {
        if self.merges.is_empty() || pieces.is_empty() {
            return;
        }
        let mut matches = Vec::new(); // (start, end)
        let mut key = String::new();
        for start in 0..pieces.len() {
            // The run from `start` grows one token at a time while it can still spell a pattern.
            key.clear();
            for (end, piece) in pieces.iter().enumerate().skip(start) {
                if end > start {
                    key.push(SEP);
                }
                key.push_str(&piece.text);
                if !self.merge_prefixes.contains(&key) {
                    break;
                }
                if self.merges.contains_key(&key) {
                    matches.push((start, end + 1));
                }
            }
        }
        if matches.is_empty() {
            return;
        }
        // spaCy's `_filter_special_spans`: longest (then latest) first; a span is kept when its
        // first and last tokens are not yet covered; every span marks its tokens covered.
        matches.sort_by_key(|&(s, e)| (e - s, s));
        let mut seen = HashSet::default();
        let mut kept = Vec::new();
        for &(s, e) in matches.iter().rev() {
            if !seen.contains(&s) && !seen.contains(&(e - 1)) {
                kept.push((s, e));
            }
            seen.extend(s..e);
        }
        kept.sort();
        let mut merged = Vec::with_capacity(pieces.len());
        let mut i = 0;
        let mut kept = kept.into_iter().peekable();
        while i < pieces.len() {
            match kept.peek() {
                Some(&(s, e)) if s == i => {
                    kept.next();
                    let text: String = pieces[s..e]
                        .iter()
                        .enumerate()
                        .map(|(k, p)| {
                            if p.space && s + k + 1 < e {
                                format!("{} ", p.text)
                            } else {
                                p.text.clone()
                            }
                        })
                        .collect();
                    match self.exceptions.get(&text) {
                        Some(tokens) => {
                            let space = pieces[e - 1].space;
                            merged.extend(tokens.iter().map(|t| Piece::new(t)));
                            merged.last_mut().expect("exceptions are not empty").space = space;
                        }
                        None => merged.extend(pieces[s..e].iter().cloned()),
                    }
                    i = e;
                }
                _ => {
                    merged.push(pieces[i].clone());
                    i += 1;
                }
            }
        }
        *pieces = merged;
    }
}

fn join<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    let mut key = String::new();
    for (i, t) in texts.enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.push_str(t);
    }
    key
}

type Cache = HashMap<String, Vec<String>>;

/// A token and whether a single space follows it.
#[derive(Clone)]
struct Piece {
    text: String,
    space: bool,
}

impl Piece {
    fn new(text: &str) -> Piece {
        Piece {
            text: text.to_string(),
            space: false,
        }
    }
}
