//! Where dropout masks come from.
//!
//! Every regularizer in awd asks one shared [`Masks`] handle for its masks, in call order. The
//! default source is a seeded RNG on the host (so the mask stream depends only on the seed and the
//! order of calls, never on thread scheduling or the backend); [`ReplayMasks`] hands back given
//! masks, which is how the tests replay the masks fastai recorded.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use burn::module::ParamId;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::rows::RowShare;
use crate::error::{AwdError, Result, check_probability};

/// A source of dropout masks: each entry is 0 (dropped) or `1/(1-p)` (kept, already scaled).
pub trait MaskSource: Send {
    /// A mask of `shape` for drop probability `p`, as a row-major vector.
    fn mask(&mut self, shape: &[usize], p: f64) -> Result<Vec<f32>>;

    /// Lets a source be saved and restored (the RNG state of a resumed run).
    fn state(&self) -> Option<Vec<u8>> {
        None
    }
}

/// Bernoulli(1-p) masks from a seeded ChaCha8 stream.
pub struct RngMasks {
    rng: ChaCha8Rng,
}

impl RngMasks {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl MaskSource for RngMasks {
    /// Each entry is kept when a uniform 32-bit draw falls below `(1-p) * 2^32`: one draw per
    /// entry, filled in bulk (a weight mask has millions of entries per pass).
    fn mask(&mut self, shape: &[usize], p: f64) -> Result<Vec<f32>> {
        check_probability("p", p)?;
        let n: usize = shape.iter().product();
        let threshold = ((1.0 - p) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        let scale = (1.0 / (1.0 - p)) as f32;
        if p == 0.0 {
            return Ok(vec![1.0; n]);
        }
        let mut bits = vec![0u32; n];
        self.rng.fill(&mut bits[..]);
        Ok(bits
            .into_iter()
            .map(|u| if u < threshold { scale } else { 0.0 })
            .collect())
    }

    fn state(&self) -> Option<Vec<u8>> {
        let mut out = self.rng.get_seed().to_vec();
        out.extend_from_slice(&self.rng.get_word_pos().to_le_bytes());
        out.extend_from_slice(&self.rng.get_stream().to_le_bytes());
        Some(out)
    }
}

impl RngMasks {
    /// Rebuilds a source from [`MaskSource::state`].
    pub fn from_state(state: &[u8]) -> Option<Self> {
        if state.len() != 32 + 16 + 8 {
            return None;
        }
        let seed: [u8; 32] = state[..32].try_into().ok()?;
        let pos = u128::from_le_bytes(state[32..48].try_into().ok()?);
        let stream = u64::from_le_bytes(state[48..56].try_into().ok()?);
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(stream);
        rng.set_word_pos(pos);
        Some(Self { rng })
    }
}

/// Hands back given masks in order, checking each one's shape and scale against the request.
pub struct ReplayMasks {
    queue: VecDeque<(Vec<usize>, Vec<f32>)>,
    given: usize,
    served: usize,
}

impl ReplayMasks {
    /// `masks`: (shape, row-major values), in the order they will be asked for.
    pub fn new(masks: Vec<(Vec<usize>, Vec<f32>)>) -> Self {
        Self {
            given: masks.len(),
            queue: masks.into(),
            served: 0,
        }
    }
}

impl MaskSource for ReplayMasks {
    fn mask(&mut self, shape: &[usize], p: f64) -> Result<Vec<f32>> {
        let index = self.served;
        let (got, values) = self.queue.pop_front().ok_or(AwdError::MasksExhausted {
            index,
            available: self.given,
        })?;
        self.served += 1;
        if got != shape {
            return Err(AwdError::MaskShape {
                index,
                expected: shape.to_vec(),
                got,
            });
        }
        let scale = 1.0 / (1.0 - p);
        if let Some(&bad) = values
            .iter()
            .find(|&&v| v != 0.0 && ((v as f64) - scale).abs() > 1e-5 * scale)
        {
            return Err(AwdError::MaskScale {
                index,
                value: bad,
                p,
            });
        }
        Ok(values)
    }
}

/// Who a mask was drawn for: the audit attributes weight masks to the parameter they drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskOwner {
    /// DropConnect on the parameter with this id.
    Weight(ParamId),
    /// Whole rows of the embedding parameter with this id.
    Embedding(ParamId),
    /// Activations (locked dropout).
    Activation,
}

/// One mask drawn while recording (see [`Masks::start_recording`]).
#[derive(Debug, Clone)]
pub struct MaskRecord {
    pub owner: MaskOwner,
    pub p: f64,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A shared handle on one [`MaskSource`]: clones draw from the same stream, in call order.
#[derive(Clone)]
pub struct Masks {
    source: Arc<Mutex<Box<dyn MaskSource>>>,
    records: Arc<Mutex<Option<Vec<MaskRecord>>>>,
    /// Data-parallel training: an activation mask is drawn for the global batch and this rank's
    /// rows of it kept, so that N ranks draw what one process would.
    rows: Arc<Mutex<Option<RowShare>>>,
}

impl fmt::Debug for Masks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Masks")
    }
}

impl Default for Masks {
    fn default() -> Self {
        Self::seeded(0)
    }
}

impl Masks {
    pub fn new(source: impl MaskSource + 'static) -> Self {
        Self {
            source: Arc::new(Mutex::new(Box::new(source))),
            records: Arc::new(Mutex::new(None)),
            rows: Arc::new(Mutex::new(None)),
        }
    }

    /// From now on, activation masks (first dimension: the batch's rows) are drawn for `ranks`
    /// times the rows asked for, and rows `rank·n .. (rank+1)·n` of them returned: this rank's
    /// share of the global batch's masks. Weight and embedding masks are whole on every rank.
    pub fn share_rows(&self, rank: usize, ranks: usize) {
        self.set_rows((ranks > 1).then_some(RowShare::Even { rank, ranks }));
    }

    /// Sets which rows of the global batch's activation masks are drawn for (`None`: the masks
    /// are whole) and returns the share that held before.
    pub fn set_rows(&self, share: Option<RowShare>) -> Option<RowShare> {
        std::mem::replace(
            &mut *self.rows.lock().unwrap_or_else(|e| e.into_inner()),
            share,
        )
    }

    /// From now on, keeps a copy of every mask drawn, with its owner.
    pub fn start_recording(&self) {
        *self.records.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    /// The masks recorded since [`start_recording`](Self::start_recording); recording stops.
    pub fn take_records(&self) -> Vec<MaskRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// Masks from a seeded RNG.
    pub fn seeded(seed: u64) -> Self {
        Self::new(RngMasks::new(seed))
    }

    /// Masks replayed from a list (shape, values).
    pub fn replay(masks: Vec<(Vec<usize>, Vec<f32>)>) -> Self {
        Self::new(ReplayMasks::new(masks))
    }

    /// The source's saved state, where it has one.
    pub fn state(&self) -> Option<Vec<u8>> {
        self.lock().state()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn MaskSource>> {
        // A panic while holding the lock cannot leave a mask source half-updated in a way
        // that matters more than the panic itself, so a poisoned lock is taken over.
        self.source.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Draws one mask of `shape` (entries 0 or `1/(1-p)`) as a tensor on `device`.
    ///
    /// The mask is a constant: it never requires a gradient.
    pub fn draw<const D: usize>(
        &self,
        shape: [usize; D],
        p: f64,
        device: &Device,
    ) -> Result<Tensor<D>> {
        self.draw_for(MaskOwner::Activation, shape, p, device)
    }

    /// [`draw`](Self::draw), saying whom the mask is for.
    pub fn draw_for<const D: usize>(
        &self,
        owner: MaskOwner,
        shape: [usize; D],
        p: f64,
        device: &Device,
    ) -> Result<Tensor<D>> {
        let share = self.rows.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let values = match (owner, share) {
            (MaskOwner::Activation, Some(share)) if D > 0 => {
                share.select(&shape, |global| self.lock().mask(global, p))?
            }
            _ => self.lock().mask(&shape, p)?,
        };
        if let Some(records) = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            records.push(MaskRecord {
                owner,
                p,
                shape: shape.to_vec(),
                values: values.clone(),
            });
        }
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mask is the stream's next draws against the threshold, one per entry in order, and
    /// leaves the stream just past them (checkpoints record that position): two masks in a row,
    /// several sizes.
    #[test]
    fn masks_are_the_stream_in_order() {
        for n in [1usize, 16383, 16384, 16385, 3 * 16384 + 7] {
            let mut masks = RngMasks::new(9);
            let mut reference = ChaCha8Rng::seed_from_u64(9);
            for _ in 0..2 {
                let got = masks.mask(&[n], 0.3).unwrap();
                let mut bits = vec![0u32; n];
                reference.fill(&mut bits[..]);
                let threshold = (0.7 * 4_294_967_296.0) as u32;
                let scale = (1.0 / 0.7f64) as f32;
                let want: Vec<f32> = bits
                    .iter()
                    .map(|&u| if u < threshold { scale } else { 0.0 })
                    .collect();
                assert_eq!(got, want, "n = {n}");
            }
            assert_eq!(masks.rng.get_word_pos(), reference.get_word_pos());
        }
    }
}
