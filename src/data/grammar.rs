//! A small probabilistic grammar built into awd: the offline corpus of `awd train`, whose
//! per-token entropy is known exactly, so a trained model can be compared with the best possible.
//!
//! The grammar is a finite automaton: from each state, each word leads to one next state, so the
//! state is a function of the text so far and the entropy rate of the token stream is
//! `H = sum_s pi(s) H(words | s)`, with `pi` the stationary distribution of the states. No model
//! can have a lower expected cross-entropy per token; `exp(H)` is the best possible perplexity.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One state's choices: (word, weight, next state).
type Row = Vec<(&'static str, f64, usize)>;

/// The automaton, with normalized probabilities.
#[derive(Debug, Clone)]
pub struct Grammar {
    rows: Vec<Row>,
}

const DET: [&str; 5] = ["the", "a", "every", "some", "my"];
const NAME: [&str; 3] = ["alice", "bob", "carol"];
const ADJ: [&str; 6] = ["big", "small", "red", "old", "quiet", "happy"];
const NOUN: [&str; 8] = [
    "cat", "dog", "bird", "child", "farmer", "teacher", "robot", "king",
];
const TRANS: [&str; 5] = ["sees", "likes", "chases", "helps", "finds"];
const INTRANS: [&str; 4] = ["sleeps", "runs", "sings", "waits"];
const ADV: [&str; 3] = ["today", "again", "slowly"];

/// `words` with Zipf weights (1/rank), scaled to `mass`, all leading to `next`.
fn zipf(words: &[&'static str], mass: f64, next: usize) -> Row {
    let total: f64 = (1..=words.len()).map(|r| 1.0 / r as f64).sum();
    words
        .iter()
        .enumerate()
        .map(|(r, w)| (*w, mass / ((r + 1) as f64 * total), next))
        .collect()
}

impl Grammar {
    /// The built-in grammar: sentences such as "the old dog chases a cat today `<eos>`".
    pub fn builtin() -> Self {
        let cat = |parts: Vec<Row>| parts.into_iter().flatten().collect::<Row>();
        let rows = vec![
            // 0: sentence start
            cat(vec![zipf(&DET, 0.8, 1), zipf(&NAME, 0.2, 3)]),
            // 1: after a subject determiner
            cat(vec![zipf(&ADJ, 0.4, 2), zipf(&NOUN, 0.6, 3)]),
            // 2: after a subject adjective
            zipf(&NOUN, 1.0, 3),
            // 3: after the subject
            cat(vec![zipf(&TRANS, 0.6, 4), zipf(&INTRANS, 0.4, 7)]),
            // 4: after a transitive verb
            cat(vec![zipf(&DET, 0.85, 5), zipf(&NAME, 0.15, 7)]),
            // 5: after an object determiner
            cat(vec![zipf(&ADJ, 0.3, 6), zipf(&NOUN, 0.7, 7)]),
            // 6: after an object adjective
            zipf(&NOUN, 1.0, 7),
            // 7: clause complete
            cat(vec![
                vec![(crate::data::corpus::EOS, 0.7, 0), ("and", 0.15, 0)],
                zipf(&ADV, 0.15, 8),
            ]),
            // 8: after an adverb
            vec![(crate::data::corpus::EOS, 1.0, 0)],
        ];
        Self { rows }
    }

    /// Every word the grammar can produce.
    pub fn words(&self) -> Vec<&'static str> {
        let mut w: Vec<&str> = self.rows.iter().flatten().map(|c| c.0).collect();
        w.sort();
        w.dedup();
        w
    }

    /// `n` tokens sampled from the start state with a seeded RNG.
    pub fn sample(&self, n: usize, seed: u64) -> Vec<&'static str> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut state = 0;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let row = &self.rows[state];
            let mut u: f64 = rng.random();
            let mut pick = row.len() - 1;
            for (i, c) in row.iter().enumerate() {
                if u < c.1 {
                    pick = i;
                    break;
                }
                u -= c.1;
            }
            out.push(row[pick].0);
            state = row[pick].2;
        }
        out
    }

    /// The stationary distribution of the states (power iteration).
    pub fn stationary(&self) -> Vec<f64> {
        let n = self.rows.len();
        let mut pi = vec![1.0 / n as f64; n];
        for _ in 0..10_000 {
            let mut next = vec![0.0; n];
            for (s, row) in self.rows.iter().enumerate() {
                for &(_, p, t) in row {
                    next[t] += pi[s] * p;
                }
            }
            let delta: f64 = next.iter().zip(&pi).map(|(a, b)| (a - b).abs()).sum();
            pi = next;
            if delta < 1e-15 {
                break;
            }
        }
        pi
    }

    /// The entropy rate in nats per token: the least expected cross-entropy any model can reach.
    pub fn entropy_rate(&self) -> f64 {
        let pi = self.stationary();
        self.rows
            .iter()
            .zip(&pi)
            .map(|(row, w)| w * row.iter().map(|c| -c.1 * c.1.ln()).sum::<f64>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_distributions_and_words_pick_one_successor() {
        let g = Grammar::builtin();
        for row in &g.rows {
            let total: f64 = row.iter().map(|c| c.1).sum();
            assert!((total - 1.0).abs() < 1e-12);
            let mut words: Vec<&str> = row.iter().map(|c| c.0).collect();
            words.sort();
            let n = words.len();
            words.dedup();
            assert_eq!(words.len(), n, "a word leads to one state");
        }
    }

    #[test]
    fn sampled_text_has_the_computed_entropy() {
        // The empirical log-loss of the true model on a long sample converges to the entropy rate.
        let g = Grammar::builtin();
        let text = g.sample(200_000, 1);
        let mut state = 0;
        let mut nll = 0.0;
        for w in &text {
            let c = g.rows[state].iter().find(|c| c.0 == *w).unwrap();
            nll -= c.1.ln();
            state = c.2;
        }
        let empirical = nll / text.len() as f64;
        let h = g.entropy_rate();
        assert!(
            (empirical - h).abs() < 0.02,
            "empirical {empirical}, exact {h}"
        );
    }
}
