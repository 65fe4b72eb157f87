//! fastai's default text rules (`defaults.text_proc_rules`, fastai 2.8 `text/core.py`), in its order:
//! `fix_html`, `replace_rep`, `replace_wrep`, `spec_add_spaces`, `rm_useless_spaces`,
//! `replace_all_caps`, `replace_maj`, `lowercase` (with `xxbos` first). The patterns are fastai's.

use std::sync::OnceLock;

use fancy_regex::{Captures, Regex};
use regex::Regex as PlainRegex;

use super::spacy::py_isspace;

pub const UNK: &str = "xxunk";
pub const BOS: &str = "xxbos";
pub const TK_REP: &str = "xxrep";
pub const TK_WREP: &str = "xxwrep";
pub const TK_UP: &str = "xxup";
pub const TK_MAJ: &str = "xxmaj";

struct Patterns {
    wrep: Regex,
    spaces: PlainRegex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let plain = |p: &str| PlainRegex::new(p).expect("fastai's patterns compile");
        Patterns {
            wrep: Regex::new(r"(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)")
                .expect("fastai's pattern compiles"),
            spaces: plain(r" {2,}"),
        }
    })
}

/// All of fastai's rules, in order: the text spaCy's tokenizer then splits.
pub fn apply(text: &str) -> String {
    let p = patterns();
    let t = fix_html(text);
    let t = replace_rep(&t);
    let t = if may_repeat_words(&t) {
        replace(&p.wrep, &t, |c| {
            let (word, reps, end) = (&c[1], &c[2], &c[3]);
            let n = reps.split(py_isspace).filter(|w| !w.is_empty()).count() + 2;
            format!(" {TK_WREP} {n} {word} {end}")
        })
    } else {
        t
    };
    let t = spec_add_spaces(&t);
    let t = p.spaces.replace_all(&t, " ");
    lowercase(&mark_case(&t))
}

/// `fix_html`: fastai's replacements, then Python's `html.unescape` (HTML5's entities).
pub fn fix_html(x: &str) -> String {
    const FIXES: [(&str, &str); 13] = [
        ("#39;", "'"),
        ("amp;", "&"),
        ("#146;", "'"),
        ("nbsp;", " "),
        ("#36;", "$"),
        ("\\n", "\n"),
        ("quot;", "'"),
        ("<br />", "\n"),
        ("\\\"", "\""),
        ("<unk>", UNK),
        (" @.@ ", "."),
        (" @-@ ", "-"),
        ("...", " …"),
    ];
    let mut x = x.to_string();
    for (from, to) in FIXES {
        // One after the other, as fastai's chained `str.replace` calls.
        if x.contains(from) {
            x = x.replace(from, to);
        }
    }
    htmlize::unescape(x).into_owned()
}

/// `spec_add_spaces`: spaces around `/`, `#` and `\`.
fn spec_add_spaces(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + 16);
    let mut copied = 0;
    for (at, c) in t.match_indices(['/', '#', '\\']) {
        out.push_str(&t[copied..at]);
        out.push(' ');
        out.push_str(c);
        out.push(' ');
        copied = at + 1;
    }
    out.push_str(&t[copied..]);
    out
}

/// `replace_rep`, fastai's `(\S)(\1{2,})` → ` xxrep N c `: a run of three or more of one
/// non-space character (a run-length scan; the pattern's back-reference has no fast regex form).
fn replace_rep(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let (mut copied, mut chars) = (0, t.char_indices().peekable());
    while let Some((at, c)) = chars.next() {
        let mut n = 1;
        while chars.next_if(|&(_, d)| d == c).is_some() {
            n += 1;
        }
        if n >= 3 && !py_isspace(c) {
            out.push_str(&t[copied..at]);
            out.push_str(&format!(" {TK_REP} {n} {c} "));
            copied = at + n * c.len_utf8();
        }
    }
    out.push_str(&t[copied..]);
    out
}

/// Whether fastai's word-repetition pattern can match: some word followed by itself and by a
/// word starting with it (the pattern needs three in a row). Most texts have none.
fn may_repeat_words(t: &str) -> bool {
    let words: Vec<&str> = t.split(py_isspace).filter(|w| !w.is_empty()).collect();
    words
        .windows(3)
        .any(|w| w[0] == w[1] && w[2].starts_with(w[0]))
}

/// `replace_all_caps` then `replace_maj`. fastai's patterns, `(\s|^)([A-Z]+[^a-z\s]*)(?=(\s|$))`
/// and `(\s|^)([A-Z][^A-Z\s]*)(?=(\s|$))`, match whole whitespace-delimited words: a word
/// matches the first when it starts with A-Z and holds no a-z, the second when it starts with A-Z
/// and holds no other A-Z. All caps → `xxup word`, capitalized → `xxmaj word` (no mark for a
/// single letter), lowercased either way.
fn mark_case(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + 16);
    let mut rest = t;
    while !rest.is_empty() {
        let word_end = rest.find(py_isspace).unwrap_or(rest.len());
        let word = &rest[..word_end];
        let starts_upper = word.starts_with(|c: char| c.is_ascii_uppercase());
        let mark = if !starts_upper {
            None
        } else if !word.contains(|c: char| c.is_ascii_lowercase()) {
            Some(TK_UP)
        } else if !word[1..].contains(|c: char| c.is_ascii_uppercase()) {
            Some(TK_MAJ)
        } else {
            None
        };
        match mark {
            Some(m) => {
                if word.chars().nth(1).is_some() {
                    out.push_str(m);
                    out.push(' ');
                }
                out.push_str(&word.to_lowercase());
            }
            None => out.push_str(word),
        }
        rest = &rest[word_end..];
        let space_end = rest.find(|c: char| !py_isspace(c)).unwrap_or(rest.len());
        out.push_str(&rest[..space_end]);
        rest = &rest[space_end..];
    }
    out
}

/// `lowercase`: `xxbos`, then the text lowercased and stripped.
fn lowercase(t: &str) -> String {
    format!("{BOS} {}", t.to_lowercase().trim_matches(py_isspace))
}

/// Python's `re.sub` with a function.
fn replace(re: &Regex, text: &str, f: impl Fn(&Captures<str>) -> String) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Ok(caps) = caps else { break };
        let m = caps.get(0).expect("group 0 is the match");
        out.push_str(&text[last..m.start()]);
        out.push_str(&f(&caps));
        last = m.end();
    }
    out.push_str(&text[last..]);
    out
}
