//! Buckets (todo).
