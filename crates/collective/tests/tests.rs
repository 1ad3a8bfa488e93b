//! Integration tests of vigil-collective: one binary, one module per concern.

mod allreduce;
mod failure;
mod hierarchical;
mod process;
mod store;
mod util;
