//! The port contract for PyTorch scripts run with `vigil launch -- python train.py`:
//! `init_process_group("gloo", init_method="env://")` makes rank 0 bind a TCPStore at
//! `MASTER_ADDR:MASTER_PORT` and the other ranks connect there. Under Vigil that port must
//! be free (Vigil's own store is at `VIGIL_STORE_ADDR:VIGIL_STORE_PORT`). Tested without
//! torch: PyPI has no CPU-only Linux wheel, and its `torch` (2.15.0: a 539 MB wheel)
//! does not import without the CUDA 13 wheels it depends on (cuda-toolkit, cudnn, nccl,
//! nvshmem, triton: gigabytes), beyond CI's time budget. A Python worker does what
//! torch's env:// rendezvous does instead — rank 0 binds and listens on `MASTER_PORT`
//! (where Vigil's store used to be: EADDRINUSE), the other rank connects and sends its
//! rank — and checks the port is not the store's.

use crate::util;

use std::time::Duration;

const WORKER: &str = r#"
import os, socket, sys, time
rank = int(os.environ["RANK"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
assert port != int(os.environ["VIGIL_STORE_PORT"]), "MASTER_PORT is the store's"
if rank == 0:
    s = socket.socket()
    s.bind(("", port))  # EADDRINUSE here if the launcher's store held the port
    s.listen(1)
    c, _ = s.accept()
    print("rank 0 got", c.recv(16).decode(), flush=True)
else:
    deadline = time.time() + 30
    while True:
        try:
            c = socket.create_connection((addr, port))
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    c.sendall(b"rank-%d" % rank)
    print("rank 1 sent", flush=True)
"#;

#[test]
fn a_torch_style_env_rendezvous_gets_a_master_port_of_its_own() {
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output();
    if python.is_err() {
        assert!(!util::in_ci(), "python3 is missing under CI");
        eprintln!("SKIPPED: python3 not found");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = util::run_with_timeout(
        util::vigil()
            .args(["launch", "--nproc_per_node", "2", "--output-dir"])
            .arg(tmp.path())
            .args(["--", "python3", "-c", WORKER]),
        Duration::from_secs(120),
    );
    let (so, se) = util::texts(&out);
    assert!(out.status.success(), "{so}{se}");
    assert!(so.contains("rank 0 got rank-1"), "{so}{se}");
}
