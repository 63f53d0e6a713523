//! A tiny HTTP/1.1 file server on 127.0.0.1, standing in for a download site in the image tests.

use std::path::Path;

/// A tiny HTTP/1.1 server on 127.0.0.1 serving the files of a directory (GET only), for
/// `image create fetch http://...` tests. Stops when dropped.
#[derive(Debug)]
pub struct FileServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    /// Serves `dir`.
    pub fn serve(dir: &Path) -> FileServer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the file server");
        let port = listener.local_addr().expect("local address").port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (dir, stopping) = (dir.to_owned(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let file = (!path.contains(".."))
                    .then(|| dir.join(path))
                    .filter(|p| p.is_file());
                match file.and_then(|p| std::fs::File::open(p).ok()) {
                    Some(mut file) => {
                        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
                        let _ = std::io::copy(&mut file, &mut stream);
                    }
                    None => {
                        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
                    }
                }
            }
        });
        FileServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL of `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
