//! What awd fetches by name: public data sets and fastai's pretrained models, downloaded over
//! HTTP(S) once, checked, unpacked (`.tgz`) into a cache, and used from the cache offline after.
//!
//! The cache is `$AWD_CACHE`, else `~/.cache/awd`. `AWD_MIRROR` (a base address such as
//! `http://host:port`) replaces the scheme and host of every address, the path kept; the checks
//! are the same whatever serves the bytes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{AwdError, Result};

use super::corpus::Level;

/// How a download is known to be the right one.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// Its SHA-256.
    Sha256(&'static str),
    /// Its size in bytes and MD5, as fastai's `download_checks.py` records them.
    SizeMd5(u64, &'static str),
    /// No published checksum (fastai's model zoo): the body must be as long as the server said,
    /// and the caller checks what the archive holds before it is cached.
    Contents,
}

/// A file awd can download.
#[derive(Debug, Clone, Copy)]
pub struct Remote {
    /// The name in the cache: the file's name, or the directory an archive is unpacked to.
    pub name: &'static str,
    pub url: &'static str,
    pub check: Check,
}

pub const TINY_SHAKESPEARE: Remote = Remote {
    name: "tinyshakespeare.txt",
    url: "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    check: Check::Sha256("86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
};
/// fastai's `URLs.WIKITEXT_TINY`: `train.csv` and `test.csv`, an article a row, no header.
pub const WIKITEXT_2: Remote = Remote {
    name: "wikitext-2",
    url: "https://s3.amazonaws.com/fast-ai-nlp/wikitext-2.tgz",
    check: Check::SizeMd5(4_070_055, "2a82d47a7b85c8b6a8e068dc4c1d37e7"),
};
/// fastai's `URLs.WIKITEXT`.
pub const WIKITEXT_103: Remote = Remote {
    name: "wikitext-103",
    url: "https://s3.amazonaws.com/fast-ai-nlp/wikitext-103.tgz",
    check: Check::SizeMd5(190_200_704, "2dd8cf8693b3d27e9c8f0a7df054b2c7"),
};
/// fastai's `URLs.IMDB`: a `.txt` file per review under `train/`, `test/` and `unsup/`.
pub const IMDB: Remote = Remote {
    name: "imdb",
    url: "https://s3.amazonaws.com/fast-ai-nlp/imdb.tgz",
    check: Check::SizeMd5(144_440_600, "90f9b1c4ff43a90d67553c9240dc0249"),
};
/// fastai's `URLs.IMDB_SAMPLE`: `texts.csv` (label, text, is_valid).
pub const IMDB_SAMPLE: Remote = Remote {
    name: "imdb_sample",
    url: "https://s3.amazonaws.com/fast-ai-sample/imdb_sample.tgz",
    check: Check::SizeMd5(571_827, "0842e61a9867caa2e6fbdb14fa703d61"),
};
/// fastai's `AWD_LSTM` forward model pretrained on WikiText-103 (`lstm_fwd.pth`, `itos_wt103.pkl`).
pub const WT103_FWD: Remote = Remote {
    name: "wt103-fwd",
    url: "https://s3.amazonaws.com/fast-ai-modelzoo/wt103-fwd.tgz",
    check: Check::Contents,
};
/// The backward model (trained on each document's tokens reversed).
pub const WT103_BWD: Remote = Remote {
    name: "wt103-bwd",
    url: "https://s3.amazonaws.com/fast-ai-modelzoo/wt103-bwd.tgz",
    check: Check::Contents,
};

/// The public data sets `--dataset` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PublicData {
    /// Karpathy's Tiny Shakespeare (character level).
    Tinyshakespeare,
    /// fastai's WikiText-2 (articles; trained on train.csv, validated on test.csv).
    #[value(name = "wikitext-2")]
    Wikitext2,
    /// fastai's WikiText-103.
    #[value(name = "wikitext-103")]
    Wikitext103,
    /// IMDb's 100,000 movie reviews (train, test and unlabelled), a tenth held out at random.
    Imdb,
    /// fastai's 1,000-review sample of IMDb (its `is_valid` column splits it).
    #[value(name = "imdb-sample")]
    ImdbSample,
}

impl PublicData {
    pub fn remote(self) -> &'static Remote {
        match self {
            PublicData::Tinyshakespeare => &TINY_SHAKESPEARE,
            PublicData::Wikitext2 => &WIKITEXT_2,
            PublicData::Wikitext103 => &WIKITEXT_103,
            PublicData::Imdb => &IMDB,
            PublicData::ImdbSample => &IMDB_SAMPLE,
        }
    }

    /// How the data set is tokenized unless `--level` says otherwise.
    pub fn level(self) -> Level {
        match self {
            PublicData::Tinyshakespeare => Level::Char,
            _ => Level::Fastai,
        }
    }

    /// The cached data, downloaded first if need be: a file, or the directory or CSV file that
    /// `--data` would take.
    pub fn fetch(self) -> Result<PathBuf> {
        match self {
            PublicData::Tinyshakespeare => fetch(self.remote()),
            PublicData::ImdbSample => {
                Ok(fetch_archive(self.remote(), |_| Ok(()))?.join("texts.csv"))
            }
            _ => fetch_archive(self.remote(), |_| Ok(())),
        }
    }
}

/// Where downloads are kept.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("AWD_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/awd")))
        .unwrap_or_else(|| PathBuf::from(".awd-cache"))
}

/// The address to fetch `remote` from: its own, or the same path under `AWD_MIRROR`.
fn address(remote: &Remote) -> String {
    match std::env::var("AWD_MIRROR") {
        Ok(base) if !base.is_empty() => {
            let path = remote
                .url
                .splitn(4, '/')
                .nth(3)
                .expect("catalogue addresses have a path");
            format!("{}/{path}", base.trim_end_matches('/'))
        }
        _ => remote.url.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cached file, downloaded first if it is not in the cache (or no longer passes its check).
pub fn fetch(remote: &Remote) -> Result<PathBuf> {
    let dir = cache_dir();
    let path = dir.join(remote.name);
    if let Check::Sha256(sum) = remote.check
        && let Ok(bytes) = std::fs::read(&path)
        && hex(&Sha256::digest(&bytes)) == sum
    {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| AwdError::io(&dir, e))?;
    download(remote, &dir)?
        .persist(&path)
        .map_err(|e| AwdError::io(&path, e.error))?;
    Ok(path)
}

/// The directory an archive (`.tgz`) unpacks to in the cache, downloaded and unpacked first if
/// need be. `verify` sees the unpacked directory before it is cached; nothing is cached when the
/// download, the unpacking or `verify` fails.
pub fn fetch_archive(remote: &Remote, verify: impl Fn(&Path) -> Result<()>) -> Result<PathBuf> {
    let dir = cache_dir();
    let target = dir.join(remote.name);
    if target.is_dir() {
        return Ok(target);
    }
    std::fs::create_dir_all(&dir).map_err(|e| AwdError::io(&dir, e))?;
    let archive = download(remote, &dir)?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{}.", remote.name))
        .tempdir_in(&dir)
        .map_err(|e| AwdError::io(&dir, e))?;
    let refused = |why: String| AwdError::Download {
        name: remote.name.into(),
        url: address(remote),
        reason: format!("{why}; nothing was cached"),
    };
    let file = archive
        .reopen()
        .map_err(|e| AwdError::io(archive.path(), e))?;
    // `unpack` refuses entries that would land outside `staging`.
    tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
        .unpack(staging.path())
        .map_err(|e| refused(format!("not a readable .tgz archive ({e})")))?;
    // An archive of one top directory (fastai's are) is cached as that directory.
    let entries: Vec<PathBuf> = std::fs::read_dir(staging.path())
        .map_err(|e| AwdError::io(staging.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let root = match entries.as_slice() {
        [one] if one.is_dir() => one.clone(),
        [] => return Err(refused("the archive is empty".into())),
        _ => staging.path().to_path_buf(),
    };
    verify(&root).map_err(|e| refused(e.to_string()))?;
    std::fs::rename(&root, &target).map_err(|e| AwdError::io(&target, e))?;
    Ok(target)
}

/// Downloads `remote` into a temporary file in `dir` and checks it; the file goes away unless the
/// caller persists it.
fn download(remote: &Remote, dir: &Path) -> Result<tempfile::NamedTempFile> {
    let url = address(remote);
    let failed = |why: String| AwdError::Download {
        name: remote.name.into(),
        url: url.clone(),
        reason: format!(
            "{why}; nothing was cached (offline, pass the files themselves with --data or --pretrained)"
        ),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent.get(&url).call().map_err(|e| failed(e.to_string()))?;
    let announced = response.body().content_length();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", remote.name))
        .suffix(".download")
        .tempfile_in(dir)
        .map_err(|e| AwdError::io(dir, e))?;
    eprintln!(
        "downloading {} from {url}{}",
        remote.name,
        announced.map_or(String::new(), |n| format!(" ({:.1} MB)", n as f64 / 1e6))
    );
    let bar = indicatif::ProgressBar::new(announced.unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {eta}")
            .expect("a valid template"),
    );
    let (mut sha, mut md5, mut len) = (Sha256::new(), Md5::new(), 0u64);
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| failed(e.to_string()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
        len += n as u64;
        tmp.write_all(&buf[..n])
            .map_err(|e| AwdError::io(tmp.path(), e))?;
        bar.set_position(len);
    }
    bar.finish_and_clear();
    tmp.as_file()
        .sync_all()
        .map_err(|e| AwdError::io(tmp.path(), e))?;
    match remote.check {
        Check::Sha256(sum) => {
            let got = hex(&sha.finalize());
            if got != sum {
                return Err(failed(format!(
                    "its checksum {got} is not the expected {sum}"
                )));
            }
        }
        Check::SizeMd5(size, sum) => {
            let got = hex(&md5.finalize());
            if len != size || got != sum {
                return Err(failed(format!(
                    "{len} bytes with MD5 {got}, but fastai records {size} bytes with MD5 {sum}"
                )));
            }
        }
        Check::Contents => {
            if let Some(n) = announced
                && n != len
            {
                return Err(failed(format!("{len} bytes arrived of the {n} announced")));
            }
        }
    }
    Ok(tmp)
}
