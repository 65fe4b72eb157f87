//! fastai's `SentenceEncoder`: a batch of documents through the AWD-LSTM chunk by chunk, its state
//! carried, and the positions each row pools. In a data-parallel job a rank encodes its share of
//! the rows and draws its rows of the activation masks one process would draw for the whole batch.

use burn::tensor::{Int, Tensor, TensorData};

use super::documents::DocBatch;
use super::encoder::AwdLstm;
use crate::dropout::RowShare;
use crate::error::{AwdError, Result};

/// A batch's rows in order of where their documents start (stably, so the longest first): the
/// rows a chunk runs are then the first `real` of them (fastai's `real_bs`).
pub(super) struct Sorted {
    /// `order[k]`: the batch row at sorted position `k`.
    pub order: Vec<usize>,
    /// Each sorted position's document span.
    pub spans: Vec<(usize, usize)>,
}

impl Sorted {
    pub fn new(batch: &DocBatch, bptt: usize) -> Result<Self> {
        if let Some(r) = (0..batch.rows).find(|&r| !batch.spans[r].0.is_multiple_of(bptt)) {
            return Err(AwdError::Config(format!(
                "row {r}'s document starts at position {}, inside a chunk of {bptt}: pad at the front by whole chunks",
                batch.spans[r].0
            )));
        }
        let mut order: Vec<usize> = (0..batch.rows).collect();
        order.sort_by_key(|&r| batch.spans[r].0);
        let spans = order.iter().map(|&r| batch.spans[r]).collect();
        Ok(Self { order, spans })
    }

    /// The batch row order back from sorted positions: `inverse[row]` is the row's position.
    pub fn inverse(&self) -> Vec<i64> {
        let mut inverse = vec![0i64; self.order.len()];
        for (sorted, &r) in self.order.iter().enumerate() {
            inverse[r] = sorted as i64;
        }
        inverse
    }
}

/// What the chunks gave for the rows encoded.
pub(super) struct Encoded {
    /// `[W, n, emb]` (time-major, as the encoder computes it): the encoder's output at the
    /// kept chunks, zeros where a row had no input.
    pub enc: Tensor<3>,
    /// Each encoded row's pooled positions among the `W`.
    pub pooled_at: Vec<Vec<bool>>,
}

/// The rows at sorted positions `rows` (ascending; all of them on one process) through
/// `encoder`, chunk by chunk: each joins with a zero state when its document begins, and the
/// state is carried across chunks, detached, as fastai's AWD-LSTM does. A chunk is kept for
/// pooling where, counted from its document's start, some row's chunk begins within the last
/// `max_len` positions.
///
/// `shared`: one rank's rows of the global batch. Each chunk's activation masks are then this
/// rank's rows of those drawn for the chunk's rows of the whole batch, and a rank none of whose
/// rows has begun runs the chunk on a stand-in row and drops it, so that every rank draws every
/// chunk's masks, as one process does.
pub(super) fn encode(
    encoder: &mut AwdLstm,
    batch: &DocBatch,
    sorted: &Sorted,
    rows: &[usize],
    (bptt, max_len, shared): (usize, usize, bool),
) -> Result<Encoded> {
    let device = encoder.encoder.weight.device();
    let pad = encoder.config.pad_token as u32;
    let (n, width, spans) = (rows.len(), batch.width, &sorted.spans);
    let kept = |k: usize, i: usize| {
        let (start, end) = spans[k];
        i >= start && i < end && end - i <= max_len
    };
    let masks = encoder.encoder_dp.masks.clone();
    let words = |positions: &[usize], i: usize, len: usize| {
        let ids: Vec<i64> = positions
            .iter()
            .flat_map(|&k| {
                let r = sorted.order[k];
                batch.ids[r * width + i..r * width + i + len].iter()
            })
            .map(|&t| t as i64)
            .collect();
        Tensor::<2, Int>::from_data(TensorData::new(ids, [positions.len(), len]), &device)
    };

    encoder.reset();
    let mut outs = Vec::new();
    let mut pooled_at: Vec<Vec<bool>> = vec![Vec::new(); n];
    for i in (0..width).step_by(bptt) {
        let len = bptt.min(width - i);
        let real = spans.iter().take_while(|&&(s, _)| s <= i).count();
        if real == 0 {
            continue;
        }
        let begun = rows.iter().take_while(|&&k| k < real).count();
        if shared {
            let keep = if begun == 0 {
                vec![0]
            } else {
                rows[..begun].to_vec()
            };
            masks.set_rows(Some(RowShare::Rows { of: real, keep }));
        }
        let out = if begun == 0 {
            // None of this rank's rows has begun (only in a batch's first chunks).
            let [_, _, emb] = encoder.forward_time_major(words(&[0], i, len))?.dims();
            encoder.reset();
            Tensor::zeros([len, n, emb], &device)
        } else {
            let out = encoder.forward_time_major(words(&rows[..begun], i, len))?;
            match begun < n {
                true => {
                    let [_, _, emb] = out.dims();
                    let zeros = Tensor::zeros([len, n - begun, emb], &device);
                    Tensor::cat(vec![out, zeros], 1)
                }
                false => out,
            }
        };
        if !(0..real).any(|k| kept(k, i)) {
            continue;
        }
        outs.push(out);
        for (at, &k) in pooled_at.iter_mut().zip(rows) {
            let (start, end) = spans[k];
            let r = sorted.order[k];
            at.extend(
                (i..i + len).map(|p| {
                    kept(k, i) && p >= start && p < end && batch.ids[r * width + p] != pad
                }),
            );
        }
    }
    if outs.is_empty() {
        return Err(AwdError::Config(
            "the batch has no document to encode".into(),
        ));
    }
    Ok(Encoded {
        enc: Tensor::cat(outs, 0),
        pooled_at,
    })
}
