//! [`BadInput`]: a request the client must fix, naming the tensor and the row at
//! fault; the HTTP layer answers it with a 400 and its JSON body.

use serde_json::{Value, json};

/// A request the client must fix: HTTP 400 naming the input and row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {message}", match input { Some(i) => format!("input '{i}'"), None => "request".into() },
        match row { Some(r) => format!(" row {r}"), None => String::new() })]
pub struct BadInput {
    /// The tensor (input or output name) at fault; None: the request as a whole.
    pub input: Option<String>,
    /// The row (batch element, from 0) at fault.
    pub row: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl BadInput {
    pub(crate) fn new(input: Option<&str>, row: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            input: input.map(str::to_string),
            row,
            message: message.into(),
        }
    }

    /// The JSON error body: KServe's `{"error": message}` plus the input and row.
    pub fn to_json(&self) -> Value {
        json!({ "error": self.to_string(), "input": self.input, "row": self.row })
    }
}
