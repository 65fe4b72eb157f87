//! The language model's carried hidden state in a data-parallel job (`crate::dist`): a
//! checkpoint holds it for the global batch, and each rank holds it for its own rows.

use burn::tensor::{Tensor, TensorData};

use crate::dist::Dist;
use crate::error::Result;
use crate::model::LanguageModel;
use crate::nn::LstmState;
use crate::params::HostTensor;

/// `model` with the carried hidden state of every rank's rows, in the global batch's row order
/// (each rank holds its own rows; one sum assembles them). One process: `model` as it is.
pub fn gather_rows(model: &LanguageModel, dist: &Dist) -> LanguageModel {
    let mut model = model.clone();
    if dist.size() == 1 {
        return model;
    }
    let Some(states) = model.parts.encoder.hidden.take() else {
        return model;
    };
    let global = |t: Tensor<3>| {
        let [d, b, h] = t.dims();
        let device = t.device();
        let local = HostTensor::from_tensor(t).values;
        let mut all = vec![0f32; d * b * dist.size() * h];
        let stride = b * dist.size() * h;
        for k in 0..d {
            let at = k * stride + dist.rank() * b * h;
            all[at..at + b * h].copy_from_slice(&local[k * b * h..(k + 1) * b * h]);
        }
        dist.sum_f32(&mut all);
        Tensor::from_data(TensorData::new(all, [d, b * dist.size(), h]), &device)
    };
    model.parts.encoder.hidden = Some(
        states
            .into_iter()
            .map(|s| LstmState {
                h: global(s.h),
                c: global(s.c),
            })
            .collect(),
    );
    model
}

/// This rank's rows of a hidden state restored from a checkpoint (which holds the global batch's).
pub fn own_rows(model: &mut LanguageModel, dist: &Dist) -> Result<()> {
    if dist.size() == 1 {
        return Ok(());
    }
    if let Some(states) = model.parts.encoder.hidden.take() {
        let [_, b, _] = states[0].h.dims();
        let (first, count) = dist.rows(b, "the checkpoint's batch")?;
        model.parts.encoder.hidden = Some(
            states
                .into_iter()
                .map(|s| LstmState {
                    h: s.h.narrow(1, first, count),
                    c: s.c.narrow(1, first, count),
                })
                .collect(),
        );
    }
    Ok(())
}
