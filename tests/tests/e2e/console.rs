//! What `vigil launch` shows on a terminal: a real pseudo-terminal (`openpty`) as the
//! launcher's stdout and stderr, a real `configs/tiny.yaml` run, and the bytes the
//! terminal received. On a terminal with `logging.format: auto` the launcher draws one live
//! bar from rank 0's progress records and never lets a raw JSON record through;
//! `logging.format: text` gives plain lines; a pipe still gets the JSON lines (the other
//! end-to-end tests parse those).

use crate::util;

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(240);

/// A one-worker tiny run of 10 steps into `dir`, with `overrides` last.
fn tiny(dir: &Path, overrides: &[&str]) -> Command {
    let mut cmd = util::vigil();
    cmd.args(["launch", "configs/tiny.yaml", "--nproc-per-node", "1"])
        .args(["--cluster", "none"])
        .args(["--set", &format!("run.output_dir={}", dir.display())])
        .args([
            "--set",
            &format!("export.dir={}", dir.join("export").display()),
        ])
        .args(["--set", "train.max_steps=10", "--set", "train.eval_every=5"])
        .args([
            "--set",
            "logging.interval=2",
            "--set",
            "logging.histogram_every=null",
        ])
        .env_remove("VIGIL_PROGRESS_JSON")
        .env_remove("VIGIL_STORE_TOKEN")
        .env("TERM", "xterm-256color");
    for o in overrides {
        cmd.args(["--set", o]);
    }
    cmd
}

/// Runs `cmd` with a pseudo-terminal of 120×40 as stdout and stderr (stdin closed);
/// returns its exit code and everything the terminal received.
fn on_a_terminal(mut cmd: Command) -> (Option<i32>, String) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the out-pointers; the name and termios
    // arguments may be null, the window size is read only.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        let mut master = master;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the last holder of the slave side is gone.
            while let Ok(n @ 1..) = master.read(&mut buf) {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().expect("dup the pty")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn vigil");
    // The command holds the parent's copies of the slave: drop them, or EOF never comes.
    drop(cmd);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
            panic!("vigil launch timed out after {LIMIT:?}; the terminal got:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let drained = Instant::now();
    while !reader.is_finished() && drained.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    (status.code(), text)
}

#[test]
fn a_terminal_gets_one_live_bar_and_no_raw_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (code, term) = on_a_terminal(tiny(&dir, &[]));
    assert_eq!(code, Some(0), "the terminal got:\n{term}");
    // The bar: the step counter of the last record, redrawn in place.
    assert!(term.contains("10/10 steps"), "{term}");
    assert!(
        term.contains("epoch 0") && term.contains("samples/s"),
        "{term}"
    );
    assert!(term.contains("ETA "), "{term}");
    assert!(
        term.contains('\r') || term.contains("\x1b["),
        "no redraw (carriage return or ANSI sequence) reached the terminal:\n{term}"
    );
    let redraws = term.matches("/10 steps").count();
    assert!(redraws >= 2, "the bar was drawn {redraws} time(s):\n{term}");
    // Other lines of rank 0 print above the bar, as lines.
    assert!(term.contains("[rank 0] eval step 10: loss"), "{term}");
    // No raw progress record reaches the terminal ...
    assert!(!term.contains("{\"event\""), "{term}");
    // ... but every line is in the rank's log, as the worker wrote it.
    let log = std::fs::read_to_string(dir.join("logs/rank-0.log")).unwrap();
    assert!(log.contains("{\"event\":\"train\",\"step\":10,"), "{log}");
    assert!(log.contains("{\"event\":\"eval\",\"done\":"), "{log}");
}

#[test]
fn text_format_gives_plain_lines_on_a_terminal_and_json_still_goes_to_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("text");
    let (code, term) = on_a_terminal(tiny(&dir, &["logging.format=text"]));
    assert_eq!(code, Some(0), "{term}");
    assert!(term.contains("[rank 0] step 10/10 epoch 0 loss "), "{term}");
    assert!(!term.contains("10/10 steps"), "a bar in text mode:\n{term}");
    assert!(!term.contains("{\"event\""), "{term}");

    // Not a terminal: the JSON lines of today.
    let dir = tmp.path().join("pipe");
    let out = util::run_with_timeout(&mut tiny(&dir, &[]), LIMIT);
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{so}{se}");
    let steps: Vec<u64> = util::train_records(&so)
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [2, 4, 6, 8, 10], "{so}");
    assert!(so.contains("[rank 0] {\"event\":\"eval\""), "{so}");
}
