//! A real SMTP server for the tests: Debian's `python3-aiosmtpd` on a free
//! loopback port, writing each message it accepts into a Maildir, and small
//! readers of what it received.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

/// A real SMTP server writing each message it accepts into a Maildir.
pub struct Smtp {
    child: Child,
    dir: TempDir,
}

impl Smtp {
    pub async fn start(port: u16) -> Smtp {
        Smtp::start_on("127.0.0.1", port).await
    }

    pub async fn start_on(host: &str, port: u16) -> Smtp {
        Smtp::start_with(host, port, &[]).await
    }

    /// A server on `host:port` with more `aiosmtpd` options (like
    /// `--smtpscert`/`--smtpskey` for implicit TLS, `--tlscert`/`--tlskey`
    /// for STARTTLS).
    pub async fn start_with(host: &str, port: u16, options: &[&std::ffi::OsStr]) -> Smtp {
        match Smtp::try_start_with(host, port, options).await {
            Some(smtp) => smtp,
            None => panic!("aiosmtpd did not start on port {port} (taken by another process?)"),
        }
    }

    /// A server on a free loopback port of `host`, and that port. The port
    /// is picked, released and then bound by aiosmtpd, so another process
    /// may take it in between; then aiosmtpd exits and another port is
    /// tried (a test must never send its mail to someone else's server).
    pub async fn start_free(host: &str) -> (Smtp, u16) {
        for _ in 0..5 {
            let port = free_port();
            if let Some(smtp) = Smtp::try_start_with(host, port, &[]).await {
                return (smtp, port);
            }
        }
        panic!("aiosmtpd could not hold a free port on {host}");
    }

    /// [`start_with`](Self::start_with), or `None` when the server exited
    /// (its port was taken) instead of listening.
    async fn try_start_with(host: &str, port: u16, options: &[&std::ffi::OsStr]) -> Option<Smtp> {
        let dir = tempfile::tempdir().expect("maildir");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("{host}:{port}"))
            .args(options)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("box"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd is installed (apt-get install python3-aiosmtpd)");
        // Owned at once, so its Drop kills and reaps it on every path.
        let mut smtp = Smtp { child, dir };
        for _ in 0..200 {
            if !matches!(smtp.child.try_wait(), Ok(None)) {
                return None;
            }
            if tokio::net::TcpStream::connect((host, port)).await.is_ok() {
                // Something listens: ours only if aiosmtpd is still alive a
                // moment later (one that lost the port exits at once).
                tokio::time::sleep(Duration::from_millis(100)).await;
                return matches!(smtp.child.try_wait(), Ok(None)).then_some(smtp);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("box").join("new");
        let Ok(entries) = std::fs::read_dir(new) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }

    /// Waits (up to 30 s) until at least `n` messages arrived; returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..600 {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} messages, got {}", self.messages().len());
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (for now).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The value of header `name` in an RFC 5322 text.
pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let head = message.split("\n\n").next().unwrap_or(message);
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
