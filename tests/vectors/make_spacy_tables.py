"""Writes src/text/spacy_en.json: the tables of spaCy's blank English tokenizer, as fastai uses it.

fastai's `WordTokenizer` is `spacy.blank('en')` with fastai's special tokens added as special cases.
Its behaviour is data: a prefix, a suffix and an infix pattern, a URL pattern, and the exceptions
(a string and the tokens it becomes). awd's tokenizer (src/text/spacy.rs) runs spaCy's algorithm
over these tables. The patterns are Python `re` syntax; the only rewrites made here are to the
syntax Rust's fancy-regex reads (\\uXXXX and \\UXXXXXXXX escapes become \\x{...}, escaped
punctuation that needs no escape loses its backslash); what they match is unchanged.

spaCy is MIT-licensed (Copyright (C) 2016-2024 ExplosionAI GmbH, 2016 spaCy GmbH, 2015 Matthew Honnibal).

Run with spaCy 3.8 (what fastai 2.8.12 installs): python tests/vectors/make_spacy_tables.py
"""
import json, re, sys
from pathlib import Path

import spacy
from fastai.text.core import defaults

nlp = spacy.blank("en")
tok = nlp.tokenizer
for w in defaults.text_spec_tok:  # what fastai's SpacyTokenizer adds
    tok.add_special_case(w, [{spacy.symbols.ORTH: w}])


def rust_syntax(pattern):
    pattern = re.sub(r"\\U([0-9A-Fa-f]{8})", lambda m: "\\x{%X}" % int(m.group(1), 16), pattern)
    pattern = re.sub(r"\\u([0-9A-Fa-f]{4})", lambda m: "\\x{%X}" % int(m.group(1), 16), pattern)
    # Python lets any punctuation be escaped; Rust's parsers refuse escapes of some.
    return re.sub(r"\\([!'\"%,:;=@_`~<>/])", r"\1", pattern)


assert tok.token_match is None, "spaCy's English has no token_match; the Rust side assumes so"
tables = {
    "made_with": {"spacy": spacy.__version__, "python": sys.version.split()[0]},
    "prefix": rust_syntax(tok.prefix_search.__self__.pattern),
    "suffix": rust_syntax(tok.suffix_search.__self__.pattern),
    "infix": rust_syntax(tok.infix_finditer.__self__.pattern),
    "url": rust_syntax(tok.url_match.__self__.pattern),
    "faster_heuristics": tok.faster_heuristics,
    "exceptions": {k: [t[spacy.symbols.ORTH] for t in v] for k, v in sorted(tok.rules.items())},
}
out = Path(__file__).resolve().parents[2] / "src/text/spacy_en.json"
out.write_text(json.dumps(tables, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
print(f"wrote {out}: {len(tables['exceptions'])} exceptions")
