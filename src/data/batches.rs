//! AWD-LSTM batching: the token stream cut into `B` contiguous rows, read in windows of a
//! length that varies around `bptt`.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::error::{AwdError, Result};

/// The stream as `B` rows of `n` tokens (the tail that does not fill a row is dropped).
#[derive(Debug, Clone)]
pub struct Rows {
    ids: Vec<u32>,
    pub batch: usize,
    /// Tokens per row.
    pub row_len: usize,
}

impl Rows {
    pub fn new(stream: &[u32], batch: usize) -> Result<Self> {
        if batch == 0 {
            return Err(AwdError::Config("batch size must be at least 1".into()));
        }
        let len = stream.len() / batch;
        if len < 2 {
            return Err(AwdError::Config(format!(
                "{} tokens cannot fill {batch} rows of at least 2 tokens: use a smaller batch or more text",
                stream.len()
            )));
        }
        Ok(Self {
            ids: stream[..len * batch].to_vec(),
            batch,
            row_len: len,
        })
    }

    /// Rows `first .. first + count` alone (a rank's share of the batch).
    pub fn share(&self, first: usize, count: usize) -> Self {
        Self {
            ids: self.ids[first * self.row_len..(first + count) * self.row_len].to_vec(),
            batch: count,
            row_len: self.row_len,
        }
    }

    /// Inputs `[B, seq]` from position `i` and the targets one position later.
    /// `seq` is cut so that targets stay inside the rows.
    pub fn window(
        &self,
        i: usize,
        seq: usize,
        device: &Device,
    ) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let seq = seq.min(self.row_len - 1 - i);
        let take = |offset: usize| {
            let mut v = Vec::with_capacity(self.batch * seq);
            for b in 0..self.batch {
                let row = &self.ids[b * self.row_len..(b + 1) * self.row_len];
                v.extend(row[i + offset..i + offset + seq].iter().map(|&x| x as i64));
            }
            Tensor::from_data(TensorData::new(v, [self.batch, seq]), device)
        };
        (take(0), take(1))
    }

    /// Number of target tokens in the rows (windows cover positions `0..len-1`).
    pub fn targets(&self) -> usize {
        self.batch * (self.row_len - 1)
    }
}

/// Window lengths as AWD-LSTM draws them: `bptt` with probability 0.95, else `bptt/2`, then
/// `max(5, int(N(that, 5)))`; fixed at `bptt` when not variable.
#[derive(Debug, Clone)]
pub struct WindowLengths {
    rng: ChaCha8Rng,
    pub bptt: usize,
    pub variable: bool,
}

impl WindowLengths {
    pub fn new(bptt: usize, variable: bool, seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            bptt,
            variable,
        }
    }

    pub fn next_len(&mut self) -> usize {
        if !self.variable {
            return self.bptt;
        }
        let base = if self.rng.random::<f64>() < 0.95 {
            self.bptt as f64
        } else {
            self.bptt as f64 / 2.0
        };
        let drawn = Normal::new(base, 5.0)
            .expect("finite")
            .sample(&mut self.rng);
        (drawn.trunc() as i64).max(5) as usize
    }

    /// The RNG position, to resume the same sequence of lengths.
    pub fn state(&self) -> (u128, u64) {
        (self.rng.get_word_pos(), self.rng.get_stream())
    }

    pub fn restore(&mut self, (pos, stream): (u128, u64)) {
        self.rng.set_stream(stream);
        self.rng.set_word_pos(pos);
    }
}
