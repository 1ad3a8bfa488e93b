//! Integration tests of vigil-collective: one binary, one module per concern.

mod store;
mod util;
