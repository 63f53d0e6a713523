//! Rendering for people: tables and relative times.

use std::borrow::Cow;

use comfy_table::{presets, Table};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Whether a character would act on the terminal instead of showing: C0 and C1 controls
/// (escape sequences start with them), DEL, and the bidirectional overrides and isolates that
/// reorder what follows.
fn acts_on_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape_where(text: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escape) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// Text from the daemon (its messages, names, anything a container or image may have put in
/// them), safe to print: every character that would act on the terminal is shown escaped
/// (`\u{1b}`, `\r`) but line ends and tabs.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape_where(text, |c| acts_on_terminal(c) && c != '\n' && c != '\t')
}

/// [`printable`] for one table cell or one line: line ends and tabs are escaped too.
pub fn cell(text: &str) -> Cow<'_, str> {
    escape_where(text, acts_on_terminal)
}

/// A borderless table with a header row, as `docker ls` prints them. Every cell is shown with
/// [`cell`]: a container's command or a name cannot move the cursor or forge rows.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row.iter().map(|text| cell(text).into_owned()));
    }
    // comfy-table pads the first column with a leading space in this preset; keep lines flush left.
    table
        .lines()
        .map(|line| {
            line.trim_end()
                .strip_prefix(' ')
                .unwrap_or(line.trim_end())
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// "3 minutes ago" for an ISO-8601 time; the text itself when it cannot be read.
pub fn since(created: &str, now: OffsetDateTime) -> String {
    let Ok(then) = OffsetDateTime::parse(created, &Rfc3339) else {
        return created.to_owned();
    };
    let seconds = (now - then).whole_seconds();
    let plural = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match seconds {
        s if s < 0 => "just now".to_owned(),
        s if s < 60 => plural(s, "second"),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 86_400 => plural(s / 3600, "hour"),
        s if s < 14 * 86_400 => plural(s / 86_400, "day"),
        s if s < 60 * 86_400 => plural(s / (7 * 86_400), "week"),
        s if s < 730 * 86_400 => plural(s / (30 * 86_400), "month"),
        s => plural(s / (365 * 86_400), "year"),
    }
}

/// A length of time for people, to its two largest units: "3 hours 4 minutes", "2 days 1 hour".
pub fn duration(seconds: u64) -> String {
    let unit = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        s if s < 60 => unit(s, "second"),
        s if s < 3600 => unit(minutes, "minute"),
        s if s < 86_400 => format!("{} {}", unit(hours, "hour"), unit(minutes % 60, "minute")),
        _ => format!("{} {}", unit(days, "day"), unit(hours % 24, "hour")),
    }
}

/// Cuts `text` to `width` characters, marking the cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn what_would_act_on_the_terminal_is_shown_escaped() {
        assert_eq!(
            printable("plain text\n\tindented"),
            "plain text\n\tindented"
        );
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(
            printable("no such image 'x\u{1b}]0;owned\u{7}\u{1b}[2J'\r"),
            "no such image 'x\\u{1b}]0;owned\\u{7}\\u{1b}[2J'\\r"
        );
        assert_eq!(printable("a\u{9b}31mb\u{7f}"), "a\\u{9b}31mb\\u{7f}");
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(cell("sh -c 'a\nb\tc'"), "sh -c 'a\\nb\\tc'");
        let shown = table(
            &["COMMAND"],
            vec![vec!["/bin/sh\u{1b}[1A\u{1b}[2Kforged row".into()]],
        );
        assert!(!shown.contains('\u{1b}'), "{shown:?}");
        assert!(shown.contains("\\u{1b}[1A"), "{shown:?}");
    }

    #[test]
    fn relative_times() {
        let now = datetime!(2024-03-01 12:00:00 UTC);
        assert_eq!(since("2024-03-01T11:59:59.123456Z", now), "0 seconds ago");
        assert_eq!(since("2024-03-01T11:59:00Z", now), "1 minute ago");
        assert_eq!(since("2024-03-01T09:00:00+00:00", now), "3 hours ago");
        assert_eq!(since("2024-02-20T12:00:00Z", now), "10 days ago");
        assert_eq!(since("2022-01-01T00:00:00Z", now), "2 years ago");
        assert_eq!(since("yesterday", now), "yesterday");
    }

    #[test]
    fn tables_are_flush_left_without_borders() {
        let text = table(&["ID", "NAME"], vec![vec!["abc".into(), "web".into()]]);
        let lines: Vec<_> = text.lines().collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(lines[1].starts_with("abc"), "{text}");
        assert!(lines[1].contains("web"));
    }

    #[test]
    fn durations_in_their_two_largest_units() {
        assert_eq!(duration(1), "1 second");
        assert_eq!(duration(59), "59 seconds");
        assert_eq!(duration(61), "1 minute");
        assert_eq!(duration(11_045), "3 hours 4 minutes");
        assert_eq!(duration(3600), "1 hour 0 minutes");
        assert_eq!(duration(2 * 86_400 + 3600 + 5), "2 days 1 hour");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("/bin/sh /etc/rc", 8), "/bin/sh…");
        assert_eq!(truncate("short", 8), "short");
    }
}
