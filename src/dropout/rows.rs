//! A rank's rows of the global batch's activation masks, in data-parallel training: a mask is
//! drawn for the whole batch and this rank's rows of it kept, so that N ranks draw what one
//! process would.

use crate::error::{AwdError, Result};

/// Which rows of the global batch's activation masks (first dimension: the rows) a rank keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowShare {
    /// An equal share: a mask asked for `n` rows is drawn for `ranks·n`, rows
    /// `rank·n .. (rank+1)·n` kept (the language model's rows).
    Even { rank: usize, ranks: usize },
    /// A mask drawn for `of` rows, the rows `keep` kept (as many as asked for).
    Rows { of: usize, keep: Vec<usize> },
}

impl RowShare {
    /// This share of the mask `draw` gives for the global shape, for a mask of `shape`.
    pub fn select(
        self,
        shape: &[usize],
        draw: impl FnOnce(&[usize]) -> Result<Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let n = shape[0];
        let (of, keep): (usize, Vec<usize>) = match self {
            RowShare::Even { rank, ranks } => (ranks * n, (rank * n..(rank + 1) * n).collect()),
            RowShare::Rows { of, keep } => (of, keep),
        };
        if keep.len() != n || keep.iter().any(|&r| r >= of) {
            return Err(AwdError::Shape(format!(
                "a mask of {n} rows asked for as rows {keep:?} of {of}"
            )));
        }
        let mut global = shape.to_vec();
        global[0] = of;
        let all = draw(&global)?;
        let row = shape[1..].iter().product::<usize>();
        Ok(keep
            .iter()
            .flat_map(|&r| all[r * row..(r + 1) * row].iter().copied())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropout::Masks;
    use burn::tensor::Device;

    /// A share of rows is those rows of the whole batch's mask, and draws as much of the stream.
    #[test]
    fn a_share_of_rows_is_those_rows_of_the_whole_mask() {
        let (whole, shared) = (Masks::seeded(4), Masks::seeded(4));
        let device = Device::default();
        let all = whole.draw([5, 1, 3], 0.5, &device).unwrap().into_data();
        shared.set_rows(Some(RowShare::Rows {
            of: 5,
            keep: vec![1, 4],
        }));
        let part = shared.draw([2, 1, 3], 0.5, &device).unwrap().into_data();
        let (all, part) = (
            all.try_to_vec::<f32>().unwrap(),
            part.try_to_vec::<f32>().unwrap(),
        );
        assert_eq!(part, [&all[3..6], &all[12..15]].concat());
        assert_eq!(whole.state(), shared.state());
        assert!(
            shared.draw([3, 1, 3], 0.5, &device).is_err(),
            "3 rows asked, 2 kept"
        );
    }
}
