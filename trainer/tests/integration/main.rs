//! The trainer's integration tests, one module per concern, in one test binary:
//! each test binary links the whole trainer and burn, so one binary instead of six
//! saves five links per build of the suite.

mod checkpoint_export;
mod checkpoint_resume;
mod checkpoint_store;
mod data_audit;
mod data_common;
mod data_rows;
mod data_sharding;
