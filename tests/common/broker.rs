//! Starts the real `strata` binary on a free port with a temporary data dir.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    pub port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `n` brokers of one cluster (`--cores 1` each, node ids 1..=n, inter-broker ports free),
/// their data dirs `b1`, `b2`, ... under `dir`.
pub fn start_cluster(dir: &Path, n: usize) -> Vec<Broker> {
    start_cluster_with(dir, n, &[])
}

/// The bootstrap list of `brokers` (`host:port,host:port,...`).
pub fn bootstrap_all(brokers: &[Broker]) -> String {
    brokers
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",")
}

/// [`start_cluster`] with more flags for every broker.
pub fn start_cluster_with(dir: &Path, n: usize, more: &[&str]) -> Vec<Broker> {
    let peers: String = (1..=n)
        .map(|id| format!("{id}=127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",");
    (1..=n)
        .map(|id| {
            let id = id.to_string();
            let mut args = vec!["--cores", "1", "--node-id", &id, "--peers", &peers];
            args.extend_from_slice(more);
            Broker::start(&dir.join(format!("b{id}")), &args)
        })
        .collect()
}

impl Broker {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Broker {
        let mut b = Broker {
            port: free_port(),
            data_dir: data_dir.to_path_buf(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        b.spawn();
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A raw connection for wire-level tests, whose reads give up after 20 s.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.bootstrap()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.bootstrap())
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn strata");
        self.child = Some(child);
        self.wait_until(true, "broker did not start listening");
    }

    /// Waits (30 s at most) until the port accepts connections, or until it refuses them.
    fn wait_until(&self, listening: bool, failure: &str) {
        let start = Instant::now();
        while TcpStream::connect(self.bootstrap()).is_ok() != listening {
            assert!(start.elapsed() < Duration::from_secs(30), "{failure}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let start = Instant::now();
            loop {
                if c.try_wait().expect("wait").is_some() {
                    break;
                }
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("broker did not stop on SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL: a crash. Returns once the dead broker's listening sockets are gone: the
    /// kernel tears down a killed process's io_uring instances after the process is reaped,
    /// and a listener an io_uring accept still holds keeps taking connections until then
    /// (and resets them), even beside a new broker's listener on the same port.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.wait_until(false, "a killed broker's listener stayed");
        }
    }

    /// SIGSTOP: the broker freezes (a long GC pause, a stalled VM) with its sockets open.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Broker::pause`].
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&mut self, sig: libc::c_int) {
        if let Some(c) = self.child.as_ref() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }

    /// The last `n` lines the broker logged (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}
