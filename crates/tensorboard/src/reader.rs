//! Reading event files back: every record's CRCs checked, every payload decoded
//! as an `Event`. Used by the tests and by anyone debugging a run directory
//! without Python.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::Error;
use crate::proto::Event;
use crate::record::{RecordError, decode_record};

/// Decodes all events of an event file; any damage is an error naming the offset.
pub fn read_event_file(path: &Path) -> Result<Vec<Event>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        op: "read",
        path: path.to_owned(),
        source,
    })?;
    decode_events(&bytes).map_err(|e| match e {
        DecodeFailure::Record(source) => Error::Record {
            path: path.to_owned(),
            source,
        },
        DecodeFailure::Proto { offset, source } => Error::Decode {
            path: path.to_owned(),
            offset,
            source,
        },
    })
}

/// Why a byte stream is not a sequence of events.
#[derive(Debug)]
pub enum DecodeFailure {
    /// Framing or CRC error.
    Record(RecordError),
    /// A payload is not an `Event`.
    Proto {
        /// Offset of the record.
        offset: usize,
        /// The protobuf error.
        source: prost::DecodeError,
    },
}

/// Decodes a whole event stream held in memory.
pub fn decode_events(bytes: &[u8]) -> Result<Vec<Event>, DecodeFailure> {
    let mut events = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let (payload, next) = decode_record(bytes, offset).map_err(DecodeFailure::Record)?;
        let event =
            Event::decode(payload).map_err(|source| DecodeFailure::Proto { offset, source })?;
        events.push(event);
        offset = next;
    }
    Ok(events)
}

/// The event files of a directory (names containing `tfevents`), sorted by name,
/// which is by creation time for files of one host.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        op: "read",
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            op: "read",
            path: dir.to_owned(),
            source,
        })?;
        if entry.file_name().to_string_lossy().contains("tfevents") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}
