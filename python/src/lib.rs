//! `awd._awd`: the Rust side of the Python package. Every call releases the GIL while it works;
//! awd's errors arrive as Python exceptions (`FileNotFoundError`, `ValueError`), never a panic.

/// The extension's own allocations (a tokenized corpus is millions of small strings) from
/// mimalloc: `awd.tokenize_df` on every shared text 0.85 -> 0.65 s against glibc's malloc.
/// Python's objects and the `awd` command line are unaffected.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod convert;
mod models;
mod pool;
mod training;

use awd::error::AwdError;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// awd's error as the Python exception that fits it, with awd's message.
fn err(e: AwdError) -> PyErr {
    match &e {
        AwdError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// fastai's default tokenization of each text (its rules, then spaCy's English tokenizer), in
/// parallel.
#[pyfunction]
fn tokenize<'py>(py: Python<'py>, texts: Vec<String>) -> PyResult<Bound<'py, PyList>> {
    let docs = py.detach(|| tokenized(&texts, false));
    Ok(convert::token_lists(py, docs)?.0)
}

/// `tokenize` with fastai's post-rule (`replace_space`: a space inside a token becomes `▁`), and each token's count (in first-seen order): what
/// fastai's `tokenize_df` and `tokenize_files` return.
#[pyfunction]
fn tokenize_counted<'py>(
    py: Python<'py>,
    texts: Vec<String>,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyDict>)> {
    let docs = py.detach(|| tokenized(&texts, true));
    convert::token_lists(py, docs)
}

fn tokenized(texts: &[String], post_rules: bool) -> Vec<Vec<String>> {
    use rayon::prelude::*;
    let one = if post_rules {
        awd::text::for_corpus
    } else {
        awd::text::tokenize
    };
    pool::install(|| texts.par_iter().map(|t| one(t)).collect())
}

/// spaCy's English tokenizer alone (fastai's rules already applied by the caller).
#[pyfunction]
fn split<'py>(py: Python<'py>, texts: Vec<String>) -> PyResult<Bound<'py, PyList>> {
    let docs = py.detach(|| pool::install(|| awd::text::split_all(&texts)));
    Ok(convert::token_lists(py, docs)?.0)
}

#[pymodule]
fn _awd(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize_counted, m)?)?;
    m.add_function(wrap_pyfunction!(split, m)?)?;
    m.add_function(wrap_pyfunction!(models::load_model, m)?)?;
    m.add_function(wrap_pyfunction!(training::train_lm, m)?)?;
    m.add_function(wrap_pyfunction!(training::train_classifier, m)?)?;
    m.add_class::<models::Model>()?;
    Ok(())
}
