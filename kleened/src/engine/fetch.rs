//! Getting a base-system archive: from `http://`/`https://` (downloaded with progress) or from a
//! `file://` path on the daemon's host, and checking that it is a tar archive before anything is
//! unpacked.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;

/// How often a download reports progress at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// Where an archive comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file on the daemon's host.
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Http(String),
}

impl Source {
    /// Reads `http://`, `https://` and `file://` URLs. `file://` takes an absolute path
    /// (`file:///srv/base.txz`) or one relative to the daemon's working directory (`file://./base.txz`).
    pub fn parse(url: &str) -> Result<Source, String> {
        if url.is_empty() {
            return Err("the 'fetch' method needs a url".to_owned());
        }
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(format!("'{url}' has no path"));
            }
            return Ok(Source::File(PathBuf::from(path)));
        }
        match reqwest::Url::parse(url) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() =>
            {
                Ok(Source::Http(url.to_owned()))
            }
            Ok(parsed) => Err(format!(
                "unsupported url '{url}': the scheme '{}' is not one of http, https and file",
                parsed.scheme()
            )),
            Err(e) => Err(format!("invalid url '{url}': {e}")),
        }
    }
}

/// The compression of a tar archive, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Xz,
    Gzip,
    Bzip2,
    Zstd,
    Tar,
}

/// Recognises a tar archive (plain, or compressed with xz, gzip, bzip2 or zstd) from its first bytes.
pub fn archive_kind(head: &[u8]) -> Option<ArchiveKind> {
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(ArchiveKind::Xz)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::Gzip)
    } else if head.starts_with(b"BZh") {
        Some(ArchiveKind::Bzip2)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(ArchiveKind::Zstd)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(ArchiveKind::Tar)
    } else {
        None
    }
}

/// Checks that the file at `path` is a tar archive; the error names `what` (the URL as given).
pub fn check_archive(path: &Path, what: &str) -> Result<ArchiveKind, String> {
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .and_then(|file| file.take(512).read_to_end(&mut head))
        .map_err(|e| format!("could not read {what}: {e}"))?;
    archive_kind(&head).ok_or_else(|| {
        format!("{what} is not a tar archive (plain, or compressed with xz, gzip, bzip2 or zstd)")
    })
}

/// Downloads `url` into `dest`, reporting progress as `\rdownloaded N of M bytes (P%)` frames that a
/// terminal shows as one line updating in place. Stops (and leaves `dest` for the caller to remove)
/// when `cancel` fires.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    dest: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<u64, String> {
    // The reference's words, then which URL and why.
    let fail = |reason: String| format!("could not fetch file from url {url}: {reason}");
    let mut response = tokio::select! {
        response = client.get(url).send() => response.map_err(|e| fail(describe_reqwest(&e)))?,
        () = cancel.cancelled() => return Err("the daemon is shutting down".to_owned()),
    };
    if !response.status().is_success() {
        return Err(fail(format!("the server answered {}", response.status())));
    }
    let total = response.content_length();
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| format!("could not create {}: {e}", dest.display()))?;
    let mut done: u64 = 0;
    let mut last_report = Instant::now();
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk.map_err(|e| fail(describe_reqwest(&e)))?,
            () = cancel.cancelled() => return Err("the daemon is shutting down".to_owned()),
        };
        let Some(chunk) = chunk else { break };
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("could not write {}: {e}", dest.display()))?;
        done += chunk.len() as u64;
        if last_report.elapsed() >= PROGRESS_INTERVAL {
            progress.say(progress_line(done, total)).await;
            last_report = Instant::now();
        }
    }
    file.flush()
        .await
        .map_err(|e| format!("could not write {}: {e}", dest.display()))?;
    if let Some(total) = total {
        if done != total {
            return Err(fail(format!(
                "the download ended after {done} of {total} bytes"
            )));
        }
    }
    progress
        .say(format!("{}\n", progress_line(done, total)))
        .await;
    Ok(done)
}

/// `\rdownloaded N of M bytes (P%)`, or `\rdownloaded N bytes` when the size is unknown. klee reads
/// these to draw its progress bar.
pub fn progress_line(done: u64, total: Option<u64>) -> String {
    match total {
        Some(total) if total > 0 => format!(
            "\rdownloaded {done} of {total} bytes ({}%)",
            done * 100 / total
        ),
        _ => format!("\rdownloaded {done} bytes"),
    }
}

/// reqwest's error with its causes, which hold the useful part ("connection refused").
fn describe_reqwest(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_by_scheme() {
        assert_eq!(
            Source::parse("file:///srv/base.txz"),
            Ok(Source::File("/srv/base.txz".into()))
        );
        assert_eq!(
            Source::parse("file://./base.txz"),
            Ok(Source::File("./base.txz".into()))
        );
        assert_eq!(
            Source::parse("https://download.freebsd.org/x/base.txz"),
            Ok(Source::Http(
                "https://download.freebsd.org/x/base.txz".into()
            ))
        );
        assert!(Source::parse("ftp://host/base.txz")
            .unwrap_err()
            .contains("scheme 'ftp'"));
        assert!(Source::parse("").unwrap_err().contains("needs a url"));
        assert!(Source::parse("base.txz")
            .unwrap_err()
            .contains("invalid url"));
    }

    #[test]
    fn archives_are_recognised_by_their_magic_bytes() {
        assert_eq!(
            archive_kind(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1]),
            Some(ArchiveKind::Xz)
        );
        assert_eq!(archive_kind(&[0x1f, 0x8b, 8]), Some(ArchiveKind::Gzip));
        assert_eq!(archive_kind(b"BZh91AY"), Some(ArchiveKind::Bzip2));
        assert_eq!(
            archive_kind(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(ArchiveKind::Zstd)
        );
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(archive_kind(&tar), Some(ArchiveKind::Tar));
        assert_eq!(archive_kind(b"<html>404</html>"), None);
        assert_eq!(archive_kind(b""), None);
    }

    #[test]
    fn progress_lines() {
        assert_eq!(
            progress_line(50, Some(200)),
            "\rdownloaded 50 of 200 bytes (25%)"
        );
        assert_eq!(progress_line(50, None), "\rdownloaded 50 bytes");
    }
}
