//! `klee image ...`

use std::io::IsTerminal;

use http::Method;
use indicatif::{ProgressBar, ProgressStyle};
use kleene_api::{IdResponse, Image, ImageCreateConfig, ImageCreateMethod};
use time::OffsetDateTime;

use super::{confirm, query_value, segment, Output};
use crate::cli::{ImageCreateArgs, MethodArg};
use crate::connection::{ClientError, Connection};
use crate::output::{since, table};
use crate::session::{self, Frame};

pub async fn list(conn: &Connection, out: Output) -> Result<(), ClientError> {
    super::list(conn, "/images/list", out, |images: Vec<Image>| {
        let now = OffsetDateTime::now_utc();
        let rows = images
            .into_iter()
            .map(|i| vec![i.id, i.name, i.tag, since(&i.created, now)])
            .collect();
        table(&["ID", "NAME", "TAG", "CREATED"], rows)
    })
    .await
}

pub async fn inspect(conn: &Connection, identifier: &str) -> Result<(), ClientError> {
    super::inspect(conn, &format!("/images/{}/inspect", segment(identifier))).await
}

/// Removes each image; goes on after a failure and reports it at the end.
pub async fn remove(conn: &Connection, images: &[String]) -> Result<(), ClientError> {
    let mut failed = None;
    for image in images {
        let path = format!("/images/{}", segment(image));
        match conn.call::<IdResponse>(Method::DELETE, &path, None).await {
            Ok(_) => println!("{image}"),
            Err(err @ ClientError::Api { .. }) => {
                eprintln!("klee: {}", err.to_string().trim_end());
                failed = Some(err);
            }
            Err(err) => return Err(err),
        }
    }
    match failed {
        // Already printed; the exit code still says something failed.
        Some(_) => Err(ClientError::Reported),
        None => Ok(()),
    }
}

pub async fn tag(conn: &Connection, image: &str, nametag: &str) -> Result<(), ClientError> {
    let path = format!(
        "/images/{}/tag?nametag={}",
        segment(image),
        query_value(nametag)
    );
    let answer: IdResponse = conn.call(Method::POST, &path, None).await?;
    println!("{}", answer.id);
    Ok(())
}

pub async fn prune(conn: &Connection, all: bool, force: bool) -> Result<(), ClientError> {
    let question = if all {
        "This removes every image no container or image is made from."
    } else {
        "This removes every untagged image no container or image is made from."
    };
    if !force && !confirm(question)? {
        return Ok(());
    }
    let removed: Vec<String> = conn
        .call(Method::POST, &format!("/images/prune?all={all}"), None)
        .await?;
    for id in removed {
        println!("{id}");
    }
    Ok(())
}

/// Creates a base image, streaming the daemon's progress; downloads get a progress bar.
pub async fn create(conn: &Connection, args: &ImageCreateArgs) -> Result<(), ClientError> {
    let method = match args.method {
        MethodArg::Fetch => ImageCreateMethod::Fetch,
        MethodArg::FetchAuto => ImageCreateMethod::FetchAuto,
        MethodArg::ZfsCopy => ImageCreateMethod::ZfsCopy,
        MethodArg::ZfsClone => ImageCreateMethod::ZfsClone,
    };
    let source = match (method, &args.source) {
        (ImageCreateMethod::FetchAuto, Some(extra)) => {
            return Err(ClientError::Settings(format!(
                "fetch-auto takes no SOURCE, got '{extra}'"
            )))
        }
        (ImageCreateMethod::FetchAuto, None) => String::new(),
        (_, Some(source)) => source.clone(),
        (_, None) => {
            return Err(ClientError::Settings(format!(
                "the '{}' method needs a SOURCE ({})",
                method.as_str(),
                if method == ImageCreateMethod::Fetch {
                    "a URL"
                } else {
                    "a ZFS dataset"
                }
            )))
        }
    };
    let config = ImageCreateConfig {
        method,
        tag: args.tag.clone().unwrap_or_default(),
        dns: !args.no_dns,
        localtime: !args.no_localtime,
        update: args.update,
        zfs_dataset: if method == ImageCreateMethod::Fetch {
            String::new()
        } else {
            source.clone()
        },
        url: if method == ImageCreateMethod::Fetch {
            source
        } else {
            String::new()
        },
        autotag: method == ImageCreateMethod::FetchAuto && args.tag.is_none() && !args.no_autotag,
    };
    let mut bar: Option<ProgressBar> = None;
    let ending = session::run(conn, "/images/create", &config, |frame| {
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        if let Some((done, total)) = parse_progress(&text) {
            let bar = bar.get_or_insert_with(|| new_bar(total));
            bar.set_position(done);
            if text.ends_with('\n') {
                bar.finish();
            }
            return;
        }
        if let Some(bar) = bar.take() {
            bar.finish();
        }
        print!("{text}");
    })
    .await?;
    if let Some(bar) = bar {
        bar.abandon();
    }
    if ending.succeeded() {
        let data = ending.message.map(|m| m.data).unwrap_or_default();
        println!("image created: {data}");
        Ok(())
    } else {
        Err(ClientError::Failed(ending.describe()))
    }
}

fn new_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// Reads the daemon's `\rdownloaded N of M bytes (P%)` / `\rdownloaded N bytes` progress frames.
fn parse_progress(text: &str) -> Option<(u64, Option<u64>)> {
    let rest = text.strip_prefix("\rdownloaded ")?;
    let (done, rest) = rest.split_once(' ')?;
    let done = done.parse().ok()?;
    match rest.strip_prefix("of ") {
        Some(rest) => Some((done, Some(rest.split_once(' ')?.0.parse().ok()?))),
        None => rest.trim_end().eq("bytes").then_some((done, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_progress;

    #[test]
    fn progress_frames_are_recognised() {
        assert_eq!(
            parse_progress("\rdownloaded 50 of 200 bytes (25%)"),
            Some((50, Some(200)))
        );
        assert_eq!(
            parse_progress("\rdownloaded 200 of 200 bytes (100%)\n"),
            Some((200, Some(200)))
        );
        assert_eq!(parse_progress("\rdownloaded 7 bytes"), Some((7, None)));
        assert_eq!(parse_progress("downloaded 7 bytes"), None);
        assert_eq!(
            parse_progress("Extracted 288 files, creating image...\n"),
            None
        );
    }
}
