//! End-to-end tests that run the real `vigil` binary, as one test binary: every
//! module here links the same dependencies (the trainer among them, for the hooked
//! `vigil` build), and one link instead of twenty-two saves most of this crate's
//! build time.
//!
//! Three files stay binaries of their own: `serve_hostile.rs` raises its process's
//! descriptor limit and floods a server (it must not share the process, or the
//! machine's two cores, with training tests), and `slurm.rs` and `s3_store.rs` are
//! run alone by `scripts/ci/cluster.sh` and `scripts/ci/s3.sh` against the real
//! services they start (their tests are ignored in the plain suite).

#[path = "../common/util.rs"]
mod util;

#[path = "../common/serve_util.rs"]
mod serve_util;

mod console;
mod crossval;
mod data_loop;
mod datasets;
mod device_step;
mod embed;
mod encoders;
mod export_gate;
mod export_onnx;
mod feature_cache;
mod launch;
mod launch_bench;
mod nothing_lost;
mod precision;
mod readme;
mod recall;
mod render;
mod report;
mod resume;
mod serve;
mod serve_http;
mod serve_swap;
mod torch_port;
mod train;
mod validate;
