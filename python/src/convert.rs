//! Token lists handed to Python: each distinct token is one `str` object shared by every list
//! that holds it (a corpus of a million tokens has tens of thousands of distinct ones), which
//! makes the lists faster to build and far smaller, and gives the counts on the way.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use rustc_hash::FxHashMap;

/// `docs` as a Python list of lists of `str`, and each token's count in the order tokens are
/// first met (the order of a `Counter` updated document by document). `docs` is freed on a
/// thread of its own (a million small strings: tens of milliseconds Python need not wait).
pub fn token_lists(
    py: Python<'_>,
    docs: Vec<Vec<String>>,
) -> PyResult<(Bound<'_, PyList>, Bound<'_, PyDict>)> {
    let lists = build(py, &docs);
    std::thread::spawn(move || drop(docs));
    lists
}

fn build<'py>(
    py: Python<'py>,
    docs: &[Vec<String>],
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyDict>)> {
    let mut index: FxHashMap<&str, usize> = FxHashMap::default();
    let mut distinct: Vec<(Bound<'py, PyString>, usize)> = Vec::new();
    let mut lists = Vec::with_capacity(docs.len());
    for doc in docs {
        let mut items = Vec::with_capacity(doc.len());
        for token in doc {
            let i = *index.entry(token.as_str()).or_insert_with(|| {
                distinct.push((PyString::new(py, token), 0));
                distinct.len() - 1
            });
            distinct[i].1 += 1;
            items.push(distinct[i].0.clone());
        }
        lists.push(PyList::new(py, items)?);
    }
    let counts = PyDict::new(py);
    for (token, n) in &distinct {
        counts.set_item(token, n)?;
    }
    Ok((PyList::new(py, lists)?, counts))
}
