//! The classifier's batches of documents, by similar lengths (fastai's `SortedDL`).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Training batches as fastai's `SortedDL` makes them: a random order cut into chunks of 50
/// batches, each chunk sorted longest first and cut into batches, the batches shuffled but the
/// one holding the longest document first (a step that runs out of memory does so at once). An
/// incomplete last batch is dropped when there are others (BatchNorm needs rows).
pub fn train_batches(lengths: &[usize], batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    if let Some(longest) = (0..order.len()).max_by_key(|&k| (lengths[order[k]], usize::MAX - k)) {
        order.swap(0, longest);
    }
    for chunk in order.chunks_mut(batch_size * 50) {
        chunk.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(|b| b.to_vec()).collect();
    if batches.len() > 1 && batches.last().is_some_and(|b| b.len() < batch_size) {
        batches.pop();
    }
    if batches.len() > 2 {
        let n = batches.len();
        batches[1..n].shuffle(&mut rng);
    }
    batches
}

/// Evaluation batches: longest first, in order.
pub fn eval_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    order.chunks(batch_size).map(|b| b.to_vec()).collect()
}
