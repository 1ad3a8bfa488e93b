//! Integration tests of vigil-collective: one binary, one module per concern.

mod allreduce;
mod store;
mod util;
