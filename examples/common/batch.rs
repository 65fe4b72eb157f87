//! The batch size of the panel examples: `BATCH` (the classifier's is 64), else 32 (the
//! language model's).
pub fn batch() -> usize {
    std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}
