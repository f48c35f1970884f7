//! Harness for end-to-end tests: runs the real `ficha-relay` and `ficha` binaries on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod balancer;
pub mod fuzz;
pub mod proxy;
pub mod smtp;
pub mod soak;
pub mod tls;

/// The directory holding the workspace's built binaries, brought up to date once per run.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // tests run from target/<profile>/deps/<test>; the binaries sit in target/<profile>.
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile directory")
            .to_path_buf();
        let profile_release = dir.ends_with("release");
        // Always ask cargo: a no-op when fresh, and never a stale binary under test.
        {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "client-demo", "-p", "ficha-relay", "--bins"]);
            if profile_release {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "building the binaries failed");
        }
        dir
    })
}

/// Path of one binary.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A running relay process, killed on drop.
pub struct Relay {
    /// The process.
    pub child: Child,
    /// Its data directory.
    pub data: PathBuf,
    /// The port it listens on.
    pub port: u16,
}

/// Waits for a process to print "listening on 127.0.0.1:N" and returns N.
pub(crate) fn wait_listening(child: &mut Child, what: &str) -> Result<u16> {
    Ok(wait_listening_keeping(child, what)?.0)
}

/// The same, also keeping every line the process prints to stdout from then on.
pub(crate) fn wait_listening_keeping(
    child: &mut Child,
    what: &str,
) -> Result<(u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>)> {
    let stdout = child.stdout.take().context("stdout piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(port.parse::<u16>().ok());
            }
            if let Ok(mut l) = kept.lock() {
                l.push(line);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(p)) => Ok((p, lines)),
        _ => bail!("{what} did not report its port"),
    }
}

impl Relay {
    /// Starts a relay on `data`, on `port` (0 picks one).
    pub fn start(data: &Path, port: u16) -> Result<Self> {
        let mut child = Command::new(bin("ficha-relay"))
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start ficha-relay")?;
        let port = wait_listening(&mut child, "ficha-relay")?;
        Ok(Self {
            child,
            data: data.to_path_buf(),
            port,
        })
    }

    /// Starts a node of a cluster on PostgreSQL (`--store URL --store-schema SCHEMA`); its
    /// data directory must hold the cluster's signing secret.
    pub fn start_on(data: &Path, url: &str, schema: &str) -> Result<Self> {
        let mut child = Command::new(bin("ficha-relay"))
            .args(["serve", "--data"])
            .arg(data)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--store",
                url,
                "--store-schema",
                schema,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start ficha-relay")?;
        let port = wait_listening(&mut child, "ficha-relay on PostgreSQL")?;
        Ok(Self {
            child,
            data: data.to_path_buf(),
            port,
        })
    }

    /// The WebSocket URL replicas use.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/sync", self.port)
    }

    /// Reads one counter of its `/metrics`, with the metrics key.
    pub fn metric(&self, name: &str) -> Result<u64> {
        let key = metrics_key(&self.data)?;
        let text = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}/metrics", self.port))
            .bearer_auth(key)
            .send()?
            .text()?;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix(&format!("{name} ")) {
                return Ok(v.trim().parse()?);
            }
        }
        bail!("no metric {name} in:\n{text}")
    }

    /// Issues a token.
    pub fn token(&self, replica: &str, companies: &[&str], read_only: bool) -> Result<String> {
        token(&self.data, replica, companies, read_only)
    }

    /// A replica named `name` in `dir`, initialised with a fresh read-write token.
    pub fn replica(&self, dir: &Path, name: &str, companies: &[&str]) -> Result<Replica> {
        Replica::init(dir, name, &self.url(), &self.token(name, companies, false)?)
    }

    /// Kills the relay (as a crash would).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PostgreSQL server of tests that need one (`FICHA_TEST_POSTGRES`, started by
/// `.ci/postgres-up`): None, said aloud, when it is not set locally; in CI its absence fails.
pub fn postgres() -> Option<String> {
    match std::env::var("FICHA_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("FICHA_TEST_POSTGRES is not set: .ci/run starts a server with .ci/postgres-up")
        }
        _ => {
            eprintln!("SKIPPED: set FICHA_TEST_POSTGRES=postgres://… (see .ci/postgres-up)");
            None
        }
    }
}

/// The key a relay's `/metrics` answers to, with `ficha-relay metrics-key`.
pub fn metrics_key(data: &Path) -> Result<String> {
    relay_key(data, "metrics-key")
}

/// The key the relay's admin page signs in with, with `ficha-relay admin-key`.
pub fn admin_key(data: &Path) -> Result<String> {
    relay_key(data, "admin-key")
}

fn relay_key(data: &Path, command: &str) -> Result<String> {
    let out = Command::new(bin("ficha-relay"))
        .args([command, "--data"])
        .arg(data)
        .output()?;
    if !out.status.success() {
        bail!("{command} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Issues a token with `ficha-relay token`.
pub fn token(data: &Path, replica: &str, companies: &[&str], read_only: bool) -> Result<String> {
    let mut cmd = Command::new(bin("ficha-relay"));
    cmd.args(["token", "--data"])
        .arg(data)
        .args(["--replica", replica]);
    for c in companies {
        cmd.args(["--company", c]);
    }
    if read_only {
        cmd.arg("--read-only");
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("token failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// A replica's data directory, driven through the `ficha` CLI.
pub struct Replica {
    /// Its data directory.
    pub data: PathBuf,
    /// Extra environment for every command (e.g. SSL_CERT_FILE for a wss:// relay).
    pub env: Vec<(String, String)>,
}

impl Replica {
    /// `ficha init`.
    pub fn init(data: &Path, name: &str, url: &str, token: &str) -> Result<Self> {
        Self::init_with_env(data, name, url, token, Vec::new())
    }

    /// `ficha init`, with extra environment for every command of this replica.
    pub fn init_with_env(
        data: &Path,
        name: &str,
        url: &str,
        token: &str,
        env: Vec<(String, String)>,
    ) -> Result<Self> {
        let r = Self {
            data: data.to_path_buf(),
            env,
        };
        r.ok(&["init", "--name", name, "--relay", url, "--token", token])?;
        Ok(r)
    }

    /// Runs `ficha --data DIR args…`.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        Ok(Command::new(bin("ficha"))
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()?)
    }

    /// Runs a command that must succeed; returns its trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!(
                "ficha {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// `ficha client show ID --json`.
    pub fn show(&self, id: &str) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(
            &self.ok(&["client", "show", id, "--json"])?,
        )?)
    }

    /// `ficha sync`, which must succeed.
    pub fn sync(&self) -> Result<()> {
        self.ok(&["sync"]).map(|_| ())
    }

    /// `ficha client add --company C --name N`; returns the new client's id.
    pub fn add_client(&self, company: &str, name: &str) -> Result<String> {
        self.ok(&["client", "add", "--company", company, "--name", name])
    }

    /// `ficha employee add --company C --name N --code K`; returns the employee's id.
    pub fn add_employee(&self, company: &str, name: &str, code: &str) -> Result<String> {
        self.ok(&[
            "employee",
            "add",
            "--company",
            company,
            "--name",
            name,
            "--code",
            code,
        ])
    }
}

/// A running `ficha serve`, killed on drop.
pub struct Served {
    child: Child,
    /// Base URL of its HTTP API.
    pub base: String,
    /// The replica's API key (`DIR/api.key`), sent as a Bearer token by `get` and `post`.
    pub key: String,
    /// What it printed on stdout.
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    /// Starts `ficha serve` on a free port.
    pub fn start(replica: &Replica) -> Result<Self> {
        Self::start_with(replica, &[])
    }

    /// Starts `ficha serve` on a free port with more arguments (`--smtp URL`).
    pub fn start_with(replica: &Replica, args: &[&str]) -> Result<Self> {
        let mut child = Command::new(bin("ficha"))
            .arg("--data")
            .arg(&replica.data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(replica.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let (port, stdout) = wait_listening_keeping(&mut child, "ficha serve")?;
        let key = std::fs::read_to_string(replica.data.join("api.key"))
            .context("ficha serve wrote no api.key")?
            .trim()
            .to_string();
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            key,
            stdout,
        })
    }

    /// The process id, for a test that stops the server under a page that has it open.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The one-time sign-in link it printed (`http://…/?token=…`).
    pub fn sign_in_link(&self) -> Option<String> {
        let lines = self.stdout.lock().ok()?;
        lines.iter().find_map(|l| {
            l.split_whitespace()
                .find(|w| w.contains("/?token="))
                .map(str::to_string)
        })
    }

    /// A request to the API with the key.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// GET a JSON document from the API.
    pub fn get(&self, path: &str) -> Result<serde_json::Value> {
        Ok(self.request(reqwest::Method::GET, path).send()?.json()?)
    }

    /// POST JSON to the API; returns the status and the JSON answer.
    pub fn post(&self, path: &str, body: serde_json::Value) -> Result<(u16, serde_json::Value)> {
        let r = self
            .request(reqwest::Method::POST, path)
            .json(&body)
            .send()?;
        let status = r.status().as_u16();
        Ok((status, r.json()?))
    }
}

impl Served {
    /// Kills the process with SIGKILL, as a crash or power cut would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `name=value` of the session cookie an answer sets, if it sets one.
pub fn session_cookie(r: &reqwest::blocking::Response) -> Option<String> {
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The texts of a client's notes, as a set.
pub fn note_texts(client: &serde_json::Value) -> std::collections::BTreeSet<String> {
    client["notes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["text"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Debian's Chromium and the browser scripts' directory (`tests/browser`, with its pinned npm
/// packages), or None (said on stderr) when either is missing outside CI; in CI, an error.
pub fn browser() -> Result<Option<(String, PathBuf)>> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        let out = Command::new("which").arg(name).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    match found {
        Some(b) if here.join("node_modules/playwright-core").exists() => Ok(Some((b, here))),
        _ => {
            let what =
                "the browser tests need Debian's chromium and `npm ci --prefix tests/browser`";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!("{what}: .ci/run installs both");
            }
            eprintln!("SKIPPED: {what}");
            Ok(None)
        }
    }
}

/// The stock automerge-repo client script (`tests/automerge-repo/client.mjs`, with its pinned
/// npm packages), or None (said on stderr) when its packages are not installed outside CI; in
/// CI, an error.
pub fn automerge_repo_client() -> Result<Option<PathBuf>> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("automerge-repo");
    if here.join("node_modules/@automerge/automerge-repo").exists() {
        return Ok(Some(here.join("client.mjs")));
    }
    let what = "the automerge-repo tests need `npm ci --prefix tests/automerge-repo`";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("{what}: .ci/run installs it");
    }
    eprintln!("SKIPPED: {what}");
    Ok(None)
}
