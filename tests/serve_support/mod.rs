//! A real `awd serve` process on 127.0.0.1 and a real HTTP client (ureq) for the server tests.
#![allow(dead_code)] // each test binary uses a part of it

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub fn export_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/fastai_export")
}

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    agent: ureq::Agent,
    pub token: Option<String>,
}

impl Server {
    /// `awd serve ARGS --addr 127.0.0.1:0`, once it says where it listens.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_awd"))
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .env_remove("AWD_SERVE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("awd starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no address: {line:?}"));
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        Server {
            child,
            url: url.to_string(),
            agent: config.into(),
            token: None,
        }
    }

    /// POSTs `body` (raw bytes) to `route`: (status, JSON answer, Retry-After).
    pub fn post_raw(&self, route: &str, body: &[u8]) -> (u16, Value, Option<String>) {
        let mut req = self
            .agent
            .post(format!("{}{route}", self.url))
            .header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.send(body).expect("the server answers");
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (resp.status().as_u16(), json, retry)
    }

    pub fn post(&self, route: &str, body: &Value) -> (u16, Value) {
        let (s, v, _) = self.post_raw(route, body.to_string().as_bytes());
        (s, v)
    }

    /// GETs `route`: (status, body text).
    pub fn get(&self, route: &str) -> (u16, String) {
        let mut req = self.agent.get(format!("{}{route}", self.url));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call().expect("the server answers");
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap_or_default(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
