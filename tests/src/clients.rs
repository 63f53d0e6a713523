//! The clients a test drives the daemon with, our `klee` and the published Python client, with
//! what a test asks of a command's output ([`ok`], [`text`], ...: [`crate::output`], presented
//! here). Also the certificates for TLS listeners.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::daemon::Daemon;
pub use crate::output::{describe, ok, ok_for, stderr, stdout, text};
use crate::skip::skipped;
use crate::{bin, workspace_root};

/// Runs our `klee` with `--host host` and `args`.
pub fn klee(host: &str, args: &[&str]) -> Output {
    Command::new(bin("klee"))
        .arg("--host")
        .arg(host)
        .args(args)
        .env_remove("KLEE_HOST")
        .output()
        .expect("run klee")
}

/// Runs the Python klee against `daemon`.
pub fn python(klee: &Path, daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(klee)
        .arg("--host")
        .arg(&daemon.host)
        .args(args)
        .env("COLUMNS", "200")
        .output()
        .expect("run the Python klee")
}

/// The published Python client (PyPI `kleene-cli` 0.1.0rc4), installed by the test command into a
/// venv. `None` only when the run opted out with `KLEENE_SKIP_PYTHON_CLIENT=1`, which is announced:
/// a requirement for [`crate::require!`].
pub fn python_klee() -> Option<PathBuf> {
    if std::env::var("KLEENE_SKIP_PYTHON_CLIENT").as_deref() == Ok("1") {
        skipped("KLEENE_SKIP_PYTHON_CLIENT=1");
        return None;
    }
    let path = std::env::var_os("KLEENE_PYTHON_KLEE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".cache/pyklee/bin/klee"));
    assert!(
        path.is_file(),
        "the Python klee is not installed at {}: run the test command (scripts/test), which installs \
         kleene-cli==0.1.0rc4 there, or set KLEENE_PYTHON_KLEE; set KLEENE_SKIP_PYTHON_CLIENT=1 to skip",
        path.display()
    );
    Some(path)
}

/// [`ok`] for the Python client, which may also print a traceback and still exit 0: neither
/// stdout nor stderr holds one.
#[track_caller]
pub fn python_ok(output: &Output) -> String {
    python_ok_for("the Python klee", output)
}

/// [`python_ok`], the panic naming first what the command was.
#[track_caller]
pub fn python_ok_for(what: impl Display, output: &Output) -> String {
    let printed = ok_for(&what, output);
    assert!(
        !text(output).contains("Traceback"),
        "{what} printed a traceback: {}",
        describe(output)
    );
    printed
}

impl Daemon {
    /// Runs our `klee` against this daemon's unix socket.
    pub fn klee(&self, args: &[&str]) -> Output {
        klee(&self.host, args)
    }

    /// Runs our `klee` against this daemon and asserts that it succeeded ([`ok_for`]); answers
    /// its stdout.
    #[track_caller]
    pub fn klee_ok(&self, args: &[&str]) -> String {
        ok_for(format_args!("klee {args:?}"), &self.klee(args))
    }

    /// [`Daemon::klee_ok`] for a command that prints JSON (`--json`, inspect); answers the JSON.
    #[track_caller]
    pub fn klee_json(&self, args: &[&str]) -> serde_json::Value {
        let printed = self.klee_ok(args);
        serde_json::from_str(&printed)
            .unwrap_or_else(|err| panic!("klee {args:?} printed no JSON ({err}): {printed}"))
    }

    /// [`Daemon::klee_json`] for a command that prints a JSON list (`--json lsc -a`).
    #[track_caller]
    pub fn klee_list(&self, args: &[&str]) -> Vec<serde_json::Value> {
        match self.klee_json(args) {
            serde_json::Value::Array(items) => items,
            other => panic!("klee {args:?} printed no list: {other}"),
        }
    }

    /// `klee run -d --name <name> <args>` (options, image, command), asserted to succeed; answers
    /// the container's ID.
    #[track_caller]
    pub fn run_detached(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        self.klee_ok(&all).trim().to_owned()
    }
}

/// Certificates for a TLS listener, written as PEM files into a directory.
#[derive(Debug)]
pub struct Certs {
    /// CA that signs the server and the good client certificate.
    pub ca: PathBuf,
    /// Server certificate for 127.0.0.1 and localhost.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate signed by `ca`.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
    /// Client certificate signed by another CA.
    pub rogue_cert: PathBuf,
    /// Its key.
    pub rogue_key: PathBuf,
}

impl Certs {
    /// Makes a CA, a server certificate and two client certificates (one from another CA) in `dir`.
    pub fn generate(dir: &Path) -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair,
        };

        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
                .expect("CA certificate")
        };
        let leaf = |issuer: &CertifiedIssuer<'_, KeyPair>,
                    names: Vec<String>,
                    usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).expect("leaf params");
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("leaf key");
            let cert = params.signed_by(&key, issuer).expect("leaf certificate");
            (cert.pem(), key.serialize_pem())
        };
        let good_ca = ca("kleene test CA");
        let rogue_ca = ca("another CA");
        let (server_cert, server_key) = leaf(
            &good_ca,
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            &good_ca,
            vec!["klee".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (rogue_cert, rogue_key) = leaf(
            &rogue_ca,
            vec!["klee".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        Certs {
            ca: write("ca.pem", &good_ca.pem()),
            server_cert: write("server-cert.pem", &server_cert),
            server_key: write("server-key.pem", &server_key),
            client_cert: write("client-cert.pem", &client_cert),
            client_key: write("client-key.pem", &client_key),
            rogue_cert: write("rogue-cert.pem", &rogue_cert),
            rogue_key: write("rogue-key.pem", &rogue_key),
        }
    }
}
