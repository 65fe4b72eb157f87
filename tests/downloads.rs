//! What awd downloads by name (`--dataset`, `--pretrained wt103`), served from a loopback server
//! through `AWD_MIRROR`: checked, refused when wrong (nothing cached), cached, and used offline.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

/// Serves `files` (path → body) over HTTP/1.0 on loopback until the test ends; returns the base
/// address. A body listed in `short` is announced `short[path]` bytes longer than it is.
fn serve(files: Vec<(&str, Vec<u8>)>, short: &[(&str, usize)]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let files: HashMap<String, Vec<u8>> =
        files.into_iter().map(|(p, b)| (p.to_string(), b)).collect();
    let short: HashMap<String, usize> = short.iter().map(|(p, n)| (p.to_string(), *n)).collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            match files.get(&path) {
                Some(body) => {
                    let announced = body.len() + short.get(&path).copied().unwrap_or(0);
                    let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {announced}\r\n\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                }
                None => {
                    let _ =
                        stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                }
            }
        }
    });
    base
}

/// A `.tgz` holding `files` (path in the archive → bytes).
fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// `awd ARGS` with the cache at `cache` and downloads from `mirror`.
fn awd(args: &[&str], cache: &Path, mirror: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(args)
        .env("AWD_CACHE", cache)
        .env("AWD_MIRROR", mirror)
        .output()
        .unwrap()
}

/// A few quick steps of `awd train` into `out`.
fn train<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--quiet", "--max-steps", "2", "--batch-size", "4"];
    args.extend([
        "--bptt",
        "8",
        "--eval-batch-size",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    args.extend(extra);
    args
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    stderr.to_string()
}

/// Fails with exit code 2, a message containing `needle`, and no panic.
fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
}

const UNREACHABLE: &str = "http://127.0.0.1:9";

#[test]
fn tinyshakespeare_is_downloaded_checked_cached_and_refused_when_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let real = std::fs::read(common::data_dir().join("tinyshakespeare.txt")).unwrap();
    let at = "/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";
    let run = |mirror: &str, out: &str| {
        let out = tmp.path().join(out);
        awd(
            &train(&out, &["--dataset", "tinyshakespeare"]),
            &cache,
            mirror,
        )
    };
    // A corrupted copy fails its checksum, is not cached, and the error says how to go offline.
    let mut bad = real.clone();
    bad[100] ^= 1;
    let out = run(&serve(vec![(at, bad)], &[]), "bad");
    fails_with(&out, "checksum");
    fails_with(&out, "--data");
    assert!(!cache.join("tinyshakespeare.txt").exists());
    // The real file is downloaded once and cached.
    let out = run(&serve(vec![(at, real.clone())], &[]), "good");
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("bits/char"));
    assert_eq!(
        std::fs::read(cache.join("tinyshakespeare.txt")).unwrap(),
        real
    );
    // Offline now: the cache serves it.
    ok(&run(UNREACHABLE, "cached"));
}

/// `--pretrained wt103` fetches fastai's model archive (here an archive of the same layout holding
/// the shared small model). The zoo publishes no checksum: a truncated download, a file that is no
/// archive and an archive whose weights are not an AWD-LSTM are each refused, leaving nothing in
/// the cache; a good one is unpacked, used, and used again offline.
#[test]
fn a_pretrained_model_by_name_is_checked_cached_and_used_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let ulmfit = common::ulmfit_dir();
    let weights = std::fs::read(ulmfit.join("lm.pth")).unwrap();
    let itos = std::fs::read(ulmfit.join("itos.pkl")).unwrap();
    let good = tgz(&[
        ("wt103-fwd/lstm_fwd.pth", &weights),
        ("wt103-fwd/itos_wt103.pkl", &itos),
    ]);
    let not_weights = tgz(&[
        ("wt103-fwd/lstm_fwd.pth", &itos),
        ("wt103-fwd/itos_wt103.pkl", &itos),
    ]);
    let at = "/fast-ai-modelzoo/wt103-fwd.tgz";
    let data = tmp.path().join("docs.txt");
    let docs: String = (0..40)
        .map(|i| format!("The film number {i} was a great and moving story.\n"))
        .collect();
    std::fs::write(&data, docs).unwrap();
    let run = |mirror: &str, out: &str| {
        let out = tmp.path().join(out);
        let args = [
            "--preset",
            "finetune",
            "--pretrained",
            "wt103",
            "--data",
            data.to_str().unwrap(),
        ];
        awd(&train(&out, &args), &cache, mirror)
    };
    let cached = || cache.join("wt103-fwd").exists();

    let out = run(&serve(vec![(at, good.clone())], &[(at, 1000)]), "short");
    fails_with(&out, "download of wt103-fwd");
    assert!(!cached());
    let out = run(
        &serve(vec![(at, good[..good.len() / 2].to_vec())], &[]),
        "cut",
    );
    fails_with(&out, "not a readable .tgz");
    fails_with(&out, "nothing was cached");
    assert!(!cached());
    let out = run(&serve(vec![(at, not_weights)], &[]), "wrong");
    fails_with(&out, "nothing was cached");
    assert!(!cached());
    fails_with(&run(UNREACHABLE, "offline"), "download of wt103-fwd");

    let log = ok(&run(&serve(vec![(at, good)], &[]), "good"));
    assert!(log.contains("lstm_fwd.pth"), "{log}");
    assert_eq!(
        std::fs::read(cache.join("wt103-fwd/lstm_fwd.pth")).unwrap(),
        weights
    );
    ok(&run(UNREACHABLE, "again"));
    // Whatever is left in the cache is the unpacked model: no partial downloads or staging.
    let left: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["wt103-fwd"]);
    assert!(!backwards(&tmp.path().join("again")));
    // The backward model: the same check, and the data is read backwards for it.
    let bwd = tgz(&[
        ("wt103-bwd/lstm_bwd.pth", &weights),
        ("wt103-bwd/itos_wt103.pkl", &itos),
    ]);
    let mirror = serve(vec![("/fast-ai-modelzoo/wt103-bwd.tgz", bwd)], &[]);
    let out = tmp.path().join("bwd");
    let args = [
        "--preset",
        "finetune",
        "--pretrained",
        "wt103-bwd",
        "--data",
        data.to_str().unwrap(),
    ];
    let log = ok(&awd(&train(&out, &args), &cache, &mirror));
    assert!(
        log.contains("lstm_bwd.pth") && log.contains("backwards"),
        "{log}"
    );
    assert!(backwards(&out), "the model says it reads backwards");
    // A name awd does not know is refused with the names it does.
    fails_with(&run_named(&cache, "wt2000"), "wt103-bwd");
}

/// Whether the model a run wrote reads documents backwards.
fn backwards(run: &Path) -> bool {
    let path = run.join(awd::train::run_dir::MODEL_FILE);
    let masks = awd::dropout::Masks::default();
    let (_, info) = awd::checkpoint::native::load(&path, &masks, &awd::device::cpu()).unwrap();
    info.extra["backwards"].as_bool().unwrap()
}

fn run_named(cache: &Path, name: &str) -> Output {
    awd(
        &["train", "--preset", "finetune", "--pretrained", name],
        cache,
        UNREACHABLE,
    )
}

/// fastai's data sets are checked against the size and MD5 fastai's `download_checks.py` records
/// (so an archive of the right layout but other bytes is refused), and, once in the cache, read in
/// their layouts offline: WikiText's header-less train.csv/test.csv, IMDb's folders of reviews,
/// the IMDb sample's CSV with its `is_valid` column.
#[test]
fn fastai_data_sets_are_checked_against_fastai_records_and_read_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let article =
        |i: usize| format!(" = Article {i} = \n The article number {i} tells a story . \n");
    let csv = |n: usize, from: usize| {
        let mut w = csv::Writer::from_writer(Vec::new());
        for i in from..from + n {
            w.write_record([article(i)]).unwrap();
        }
        w.into_inner().unwrap()
    };
    let (train_csv, test_csv) = (csv(30, 0), csv(6, 30));
    let archive = tgz(&[
        ("wikitext-2/train.csv", &train_csv),
        ("wikitext-2/test.csv", &test_csv),
    ]);
    let mirror = serve(vec![("/fast-ai-nlp/wikitext-2.tgz", archive)], &[]);
    let run = |name: &str, out: &str, mirror: &str| {
        awd(
            &train(&tmp.path().join(out), &["--dataset", name]),
            &cache,
            mirror,
        )
    };
    let out = run("wikitext-2", "refused", &mirror);
    fails_with(
        &out,
        "fastai records 4070055 bytes with MD5 2a82d47a7b85c8b6a8e068dc4c1d37e7",
    );
    assert!(!cache.exists() || std::fs::read_dir(&cache).unwrap().next().is_none());

    // The layouts, as the archives unpack them, read from the cache without a network.
    let put = |path: &str, bytes: &[u8]| {
        let p = cache.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    put("wikitext-2/train.csv", &train_csv);
    put("wikitext-2/test.csv", &test_csv);
    let log = ok(&run("wikitext-2", "wikitext", UNREACHABLE));
    assert!(
        log.contains("30 training and 6 validation documents"),
        "{log}"
    );

    for i in 0..8 {
        let (split, label) = (["train", "test", "unsup"][i % 3], ["pos", "neg"][i % 2]);
        let dir = if split == "unsup" {
            "unsup".to_string()
        } else {
            format!("{split}/{label}")
        };
        put(
            &format!("imdb/{dir}/{i}_7.txt"),
            format!("Review {i}: a fine film, I liked it.").as_bytes(),
        );
    }
    put("imdb/README", b"not a review");
    let log = ok(&run("imdb", "imdb", UNREACHABLE));
    assert!(
        log.contains("7 training and 1 validation documents"),
        "{log}"
    );

    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["label", "text", "is_valid"]).unwrap();
    for i in 0..10 {
        let valid = if i >= 7 { "True" } else { "False" };
        w.write_record([
            "positive",
            &format!("Sample review {i}, quite good."),
            valid,
        ])
        .unwrap();
    }
    put("imdb_sample/texts.csv", &w.into_inner().unwrap());
    let log = ok(&run("imdb-sample", "sample", UNREACHABLE));
    assert!(
        log.contains("7 training and 3 validation documents"),
        "{log}"
    );
}
