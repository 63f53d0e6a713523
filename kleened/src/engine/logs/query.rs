//! What a reader asks of a log: the last lines, what was written since a time, timestamps at the
//! start of each line.

use super::record::{now_micros, Record};

/// What a reader asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only the last lines.
    pub tail: Option<usize>,
    /// Only what was written at or after this many microseconds since the epoch.
    pub since: Option<u64>,
    /// Each line begins with the time it was written (RFC 3339, microseconds, UTC) and a space.
    pub timestamps: bool,
}

/// Formats records as output, each line after the time of the record it starts in when
/// timestamps are asked for; an unfinished line is carried over to the next record.
#[derive(Debug, Default)]
pub struct Formatter {
    timestamps: bool,
    at_line_start: bool,
}

impl Formatter {
    /// A formatter for `query`.
    pub fn new(query: &LogQuery) -> Formatter {
        Formatter {
            timestamps: query.timestamps,
            at_line_start: true,
        }
    }

    /// The bytes of `record` as the reader gets them.
    pub fn format(&mut self, record: &Record) -> Vec<u8> {
        if !self.timestamps {
            return record.data.clone();
        }
        let stamp = timestamp(record.micros);
        let mut out = Vec::with_capacity(record.data.len() + 32);
        for piece in record.data.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start {
                out.extend_from_slice(stamp.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(piece);
            self.at_line_start = piece.ends_with(b"\n");
        }
        out
    }
}

/// RFC 3339 with microseconds, UTC.
pub fn timestamp(micros: u64) -> String {
    let nanos = i128::from(micros) * 1000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The records a query selects: since a time, then the last `tail` lines (a line belongs where
/// it ends; the first record kept is cut to start at a line).
pub fn select(records: Vec<Record>, query: &LogQuery) -> Vec<Record> {
    let mut records: Vec<Record> = records
        .into_iter()
        .filter(|r| query.since.is_none_or(|since| r.micros >= since))
        .collect();
    let Some(tail) = query.tail else {
        return records;
    };
    if tail == 0 {
        return vec![];
    }
    let mut seen = 0;
    let mut last_byte = true;
    for index in (0..records.len()).rev() {
        for pos in (0..records[index].data.len()).rev() {
            let newline = records[index].data[pos] == b'\n';
            if std::mem::take(&mut last_byte) && newline {
                // It ends the last line.
                continue;
            }
            if newline {
                seen += 1;
                if seen == tail {
                    records.drain(..index);
                    records[0].data.drain(..=pos);
                    if records[0].data.is_empty() {
                        records.remove(0);
                    }
                    return records;
                }
            }
        }
    }
    records
}

/// Parses `since`: RFC 3339, or a number of seconds since the epoch, or a duration back from now
/// (`30s`, `10m`, `2h`, `1d`). Answers microseconds since the epoch.
pub fn parse_since(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!("invalid since '{text}': give an RFC 3339 time, seconds since the epoch, or a duration such as 10m")
    };
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds >= 0.0 {
            return Ok((seconds * 1_000_000.0) as u64);
        }
        return Err(invalid());
    }
    if let Some(unit) = text.chars().last() {
        let factor = match unit {
            's' => Some(1),
            'm' => Some(60),
            'h' => Some(3600),
            'd' => Some(86_400),
            _ => None,
        };
        if let Some(factor) = factor {
            if let Ok(count) = text[..text.len() - 1].parse::<u64>() {
                let back = count.saturating_mul(factor).saturating_mul(1_000_000);
                return Ok(now_micros().saturating_sub(back));
            }
        }
    }
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| invalid())?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1000).map_err(|_| invalid())
}
