//! Vigil's trainer library.
