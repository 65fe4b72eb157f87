//! How the classifier sees a batch of documents: ids laid out as fastai lays them (each document
//! padded at the front by whole chunks, at the end by the remainder), each row's span, and the
//! pooling over the positions a row's document covers.

use burn::tensor::{Bool, Tensor, TensorData};

use crate::error::{AwdError, Result};

/// A batch of documents as the classifier reads them: ids `[B, S]`, each row's document
/// contiguous between pad tokens.
#[derive(Debug, Clone)]
pub struct DocBatch {
    pub ids: Vec<u32>,
    pub rows: usize,
    pub width: usize,
    /// Where each row's document starts and ends (exclusive).
    pub spans: Vec<(usize, usize)>,
}

impl DocBatch {
    /// fastai's layout (`pad_input_chunk`): each document padded at the front by whole chunks and
    /// at the end by the remainder, so that every document's chunks start where it starts.
    pub fn new(docs: &[&[u32]], bptt: usize, pad: u32) -> Result<Self> {
        let width = docs.iter().map(|d| d.len()).max().unwrap_or(0);
        if docs.is_empty() || docs.iter().any(|d| d.is_empty()) {
            return Err(AwdError::Config(
                "a classifier batch needs documents with at least one token each".into(),
            ));
        }
        let mut ids = Vec::with_capacity(docs.len() * width);
        let mut spans = Vec::with_capacity(docs.len());
        for d in docs {
            let short = width - d.len();
            let front = short / bptt * bptt;
            ids.extend(std::iter::repeat_n(pad, front));
            ids.extend_from_slice(d);
            ids.extend(std::iter::repeat_n(pad, short - front));
            spans.push((front, front + d.len()));
        }
        Ok(Self {
            ids,
            rows: docs.len(),
            width,
            spans,
        })
    }

    /// Ids `[B, S]` as given, each row's document the span between its first and last non-pad
    /// token (fastai's batches).
    pub fn from_padded(ids: Vec<u32>, rows: usize, pad: u32) -> Result<Self> {
        let width = ids.len().checked_div(rows).unwrap_or(0);
        if rows == 0 || width * rows != ids.len() {
            return Err(AwdError::Shape(format!(
                "{} ids do not form {rows} rows",
                ids.len()
            )));
        }
        let spans = ids
            .chunks(width)
            .enumerate()
            .map(|(r, row)| {
                let first = row.iter().position(|&t| t != pad);
                let last = row.iter().rposition(|&t| t != pad);
                match (first, last) {
                    (Some(f), Some(l)) => Ok((f, l + 1)),
                    _ => Err(AwdError::Config(format!("row {r} holds only padding"))),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            ids,
            rows,
            width,
            spans,
        })
    }
}

/// fastai's `masked_concat_pool` with the pooled positions given per row: `enc` `[W, B, E]`
/// (time-major), `at[b][w]` true where row `b` pools position `w` → `[B, 3E]`: [output at the
/// last pooled position, max over them, mean over them].
pub(crate) fn concat_pool(enc: Tensor<3>, at: &[Vec<bool>]) -> Result<Tensor<2>> {
    let [width, rows, emb] = enc.dims();
    let device = enc.device();
    let mut last = vec![0f32; width * rows];
    let mut weights = vec![0f32; width * rows];
    let mut outside = vec![true; width * rows];
    for (r, row) in at.iter().enumerate() {
        let n = row.iter().filter(|&&p| p).count();
        let Some(l) = row.iter().rposition(|&p| p) else {
            return Err(AwdError::Config(format!(
                "document {r} has no position to pool"
            )));
        };
        last[l * rows + r] = 1.0;
        for (w, _) in row.iter().enumerate().filter(|&(_, &p)| p) {
            weights[w * rows + r] = 1.0 / n as f32;
            outside[w * rows + r] = false;
        }
    }
    let plane = |v: Vec<f32>| Tensor::<3>::from_data(TensorData::new(v, [width, rows, 1]), &device);
    let last = (enc.clone() * plane(last)).sum_dim(0).reshape([rows, emb]);
    let mean = (enc.clone() * plane(weights))
        .sum_dim(0)
        .reshape([rows, emb]);
    let outside = Tensor::<3, Bool>::from_data(TensorData::new(outside, [width, rows, 1]), &device)
        .expand([width, rows, emb]);
    let max = enc
        .mask_fill(outside, f32::NEG_INFINITY)
        .max_dim(0)
        .reshape([rows, emb]);
    Ok(Tensor::cat(vec![last, max, mean], 1))
}
