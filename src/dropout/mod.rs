//! Dropout in all the forms AWD-LSTM uses, each drawing its masks from one shared [`Masks`].

pub mod mask;
pub mod rnn;
pub mod rows;
pub mod weight;

pub use mask::{MaskOwner, MaskRecord, MaskSource, Masks, ReplayMasks, RngMasks};
pub use rnn::{Dropout, EmbeddingDropout, RnnDropout};
pub use rows::RowShare;
pub use weight::WeightDropout;

use burn::module::{Flag, Module, ModuleMapper, Param};

/// Turns every dropout in `module` on (training) or off (evaluation), staying on its device:
/// evaluation with gradients (the parity tests' eval mode) is the autodiff device with dropout off.
pub fn set_training<M: Module>(module: M, training: bool) -> M {
    struct Flags(bool);
    impl ModuleMapper for Flags {
        fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
            flag.with_value(self.0)
        }
    }
    module.map(&mut Flags(training))
}
