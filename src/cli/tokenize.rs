//! `awd tokenize [FILE|-]`: fastai's tokenization, streamed and in parallel.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use rayon::prelude::*;

#[derive(Args)]
pub struct TokenizeArgs {
    /// The documents, one a line (`-` or nothing: standard input).
    input: Option<PathBuf>,
    /// JSON lines in (`{"text": ...}`, so a document may hold line breaks) and out
    /// (`{"text": ..., "tokens": [...]}`: fastai's `Tokenizer` output, tokens as fastai returns them).
    /// Without it, each line's tokens are printed joined by spaces, after fastai's post-rule
    /// (a space inside a token becomes `▁`) and with a line break inside a token written `\n`.
    #[arg(long)]
    jsonl: bool,
}

#[derive(serde::Deserialize)]
struct Doc {
    text: String,
}

#[derive(serde::Serialize)]
struct Row<'a> {
    text: &'a str,
    tokens: &'a [String],
}

/// Documents tokenized together: enough to keep every core busy, few enough to stream.
const BATCH: usize = 8192;

pub fn run(args: TokenizeArgs) -> anyhow::Result<bool> {
    let name = match &args.input {
        Some(p) if p.as_os_str() != "-" => p.display().to_string(),
        _ => "standard input".to_string(),
    };
    let reader: Box<dyn BufRead> = match &args.input {
        Some(p) if p.as_os_str() != "-" => Box::new(BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        )),
        _ => Box::new(BufReader::new(std::io::stdin().lock())),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let started = Instant::now();
    let (mut docs, mut tokens) = (0usize, 0usize);
    let mut batch: Vec<(usize, String)> = Vec::with_capacity(BATCH);
    let mut lines = reader.lines().enumerate().peekable();
    while lines.peek().is_some() {
        batch.clear();
        for (i, line) in lines.by_ref().take(BATCH) {
            let line = line.with_context(|| format!("{name}, line {}: not UTF-8 text", i + 1))?;
            batch.push((i + 1, line));
        }
        // Parsing, tokenizing and formatting in parallel; writing in input order.
        let rendered: Vec<anyhow::Result<(usize, Vec<u8>)>> = batch
            .par_iter()
            .map(|(no, line)| {
                render(line, args.jsonl).with_context(|| format!("{name}, line {no}"))
            })
            .collect();
        for r in rendered {
            let (n, bytes) = r?;
            tokens += n;
            out.write_all(&bytes)?;
        }
        docs += batch.len();
    }
    out.flush()?;
    if docs == 0 {
        bail!("{name} holds no documents");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "tokenized {docs} documents into {tokens} tokens in {secs:.2} s ({:.0} tokens/s, {} threads)",
        tokens as f64 / secs.max(1e-9),
        rayon::current_num_threads()
    );
    Ok(true)
}

/// One input line's output line and its token count.
fn render(line: &str, jsonl: bool) -> anyhow::Result<(usize, Vec<u8>)> {
    let mut bytes = Vec::with_capacity(line.len() * 2);
    let n = if jsonl {
        let doc: Doc =
            serde_json::from_str(line).context("not a JSON object with a \"text\" string")?;
        let tokens = crate::text::tokenize(&doc.text);
        let row = Row {
            text: &doc.text,
            tokens: &tokens,
        };
        serde_json::to_writer(&mut bytes, &row)?;
        tokens.len()
    } else {
        let tokens = crate::text::tokenize(line);
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 {
                bytes.push(b' ');
            }
            bytes.extend(
                crate::text::replace_space(t)
                    .replace('\n', "\\n")
                    .as_bytes(),
            );
        }
        tokens.len()
    };
    bytes.push(b'\n');
    Ok((n, bytes))
}
