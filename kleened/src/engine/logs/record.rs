//! The on-disk record format of a container's log: a header line `<sequence> <microseconds since
//! the epoch> <length>` and that many bytes of output.

use std::io::{self, IoSlice, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its place in the container's log.
    pub sequence: u64,
    /// When it was written, in microseconds since the epoch.
    pub micros: u64,
    /// The output.
    pub data: Vec<u8>,
}

pub(super) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The records of one file.
pub(super) fn parse(bytes: &[u8]) -> Vec<Record> {
    let mut records = vec![];
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        let header = String::from_utf8_lossy(&rest[..end]);
        let mut fields = header.split(' ').map(str::parse::<u64>);
        let (Some(Ok(sequence)), Some(Ok(micros)), Some(Ok(length))) =
            (fields.next(), fields.next(), fields.next())
        else {
            break;
        };
        let start = end + 1;
        let Some(stop) = usize::try_from(length)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|stop| *stop <= rest.len())
        else {
            // A record cut by a crash: what was written before it stays readable.
            break;
        };
        records.push(Record {
            sequence,
            micros,
            data: rest[start..stop].to_vec(),
        });
        rest = &rest[stop..];
    }
    records
}

/// Writes `header` then `data` (one record) without joining them first.
pub(super) fn write_both(file: &mut std::fs::File, header: &[u8], data: &[u8]) -> io::Result<()> {
    let written = file.write_vectored(&[IoSlice::new(header), IoSlice::new(data)])?;
    if written < header.len() {
        file.write_all(&header[written..])?;
        file.write_all(data)
    } else {
        file.write_all(&data[written - header.len()..])
    }
}
