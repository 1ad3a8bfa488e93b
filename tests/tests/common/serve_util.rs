//! Helpers of the `vigil serve` tests: start the real server on a free loopback
//! port, read its log as it runs, and a minimal HTTP/1.1 client (one request per
//! connection, with timeouts) so the tests need no HTTP crate.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::util;

/// A running `vigil serve`, killed on drop.
pub struct Served {
    /// The child process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its standard error so far, each line with when the test read it.
    pub log: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Served {
    /// Starts `vigil serve --listen 127.0.0.1:0` plus `args`; waits for its
    /// "listening on" line (at most `limit`).
    pub fn start(args: &[&str], limit: Duration) -> Served {
        let mut cmd = util::vigil();
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        Self::spawn(cmd, limit)
    }

    /// Starts a prepared `vigil serve` command.
    pub fn spawn(mut cmd: Command, limit: Duration) -> Served {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil serve");
        let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        let start = Instant::now();
        loop {
            let found = log.lock().unwrap().iter().find_map(|(_, l)| {
                l.strip_prefix("vigil serve: listening on http://")
                    .map(|a| a.parse::<SocketAddr>().unwrap())
            });
            if let Some(addr) = found {
                return Served { child, addr, log };
            }
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "vigil serve exited {status} before listening:\n{}",
                    lines(&log)
                );
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "vigil serve did not listen within {limit:?}:\n{}",
                    lines(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its log so far, as text.
    pub fn log_text(&self) -> String {
        lines(&self.log)
    }

    /// When the first log line containing `needle` was read.
    pub fn logged_at(&self, needle: &str) -> Option<Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }

    /// Waits up to `limit` for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> Instant {
        let start = Instant::now();
        loop {
            if let Some(t) = self.logged_at(needle) {
                return t;
            }
            assert!(
                start.elapsed() < limit,
                "no '{needle}' in the log within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit status code.
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "vigil serve did not stop within {limit:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(log: &Mutex<Vec<(Instant, String)>>) -> String {
    log.lock()
        .unwrap()
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One request on a fresh connection (`Connection: close`), 30 s timeouts.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    // A server may answer (413) before reading the whole body and close.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end in the response"))?;
    let text = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
    out
}

/// GET `path`.
pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], b"").expect("GET")
}

/// POST a JSON body.
pub fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json".into())],
        body.to_string().as_bytes(),
    )
    .expect("POST")
}

/// One validation-file row: its id, text and image bytes (None when absent).
pub struct Row {
    /// The row id.
    pub id: String,
    /// Its text.
    pub text: Option<String>,
    /// Its image file's bytes.
    pub image: Option<Vec<u8>>,
}

/// The first `n` rows of a dataset file, images read relative to it.
pub fn rows(file: &Path, n: usize) -> Vec<Row> {
    let text = std::fs::read_to_string(file).unwrap();
    let dir = file.parent().unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Row {
                id: v["id"].as_str().unwrap().to_string(),
                text: v["text"].as_str().map(str::to_string),
                image: v["image"]
                    .as_str()
                    .map(|p| std::fs::read(dir.join(p)).unwrap()),
            }
        })
        .collect()
}

/// A JSON-form infer request of `rows` (text and image inputs, images base64).
pub fn infer_body(rows: &[Row]) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let texts: Vec<String> = rows
        .iter()
        .map(|r| r.text.clone().unwrap_or_default())
        .collect();
    let images: Vec<String> = rows
        .iter()
        .map(|r| r.image.as_ref().map(|i| b64.encode(i)).unwrap_or_default())
        .collect();
    json!({
        "id": "req-1",
        "inputs": [
            { "name": "text", "datatype": "BYTES", "shape": [rows.len()], "data": texts },
            { "name": "image", "datatype": "BYTES", "shape": [rows.len()], "data": images },
        ],
    })
}

/// The `scores` output of a JSON infer response, `[rows][labels]`.
pub fn json_scores(reply: &Value, labels: usize) -> Vec<Vec<f64>> {
    let out = reply["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "scores")
        .expect("a scores output");
    let flat: Vec<f64> = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    flat.chunks(labels).map(<[f64]>::to_vec).collect()
}
