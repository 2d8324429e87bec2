//! HTTPS end to end: `throughcare serve --tls-cert --tls-key` with a self-signed
//! certificate made at test time answers over HTTP/1.1 and h2 to a client trusting that
//! certificate, and refuses plain HTTP on the same port; a non-loopback `--listen` without
//! `--auth`, or with `--auth` but without TLS, is refused at start with one line saying
//! what to add.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{binary, Server};

/// `throughcare serve` over TLS with `cert` and `key` (killed on drop).
fn start_tls(data: &Path, cert: &Path, key: &Path) -> Server {
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = Server::start_with(data, &["--tls-cert", cert, "--tls-key", key]);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    server
}

/// `127.0.0.1:PORT` of a server over TLS.
fn addr(server: &Server) -> &str {
    server.url.trim_start_matches("https://")
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("generate a self-signed certificate");
    let cert_pem = made.cert.pem();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, cert_pem)
}

fn client(cert_pem: &str, http2_only: bool) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("the test certificate");
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .timeout(Duration::from_secs(30));
    if http2_only {
        b = b.http2_prior_knowledge();
    } else {
        b = b.http1_only();
    }
    b.build().expect("https client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_answers_over_http1_and_h2_and_plain_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = self_signed(dir.path());
    let server = start_tls(&dir.path().join("data"), &cert, &key);

    for (http2, want) in [
        (false, reqwest::Version::HTTP_11),
        (true, reqwest::Version::HTTP_2),
    ] {
        let r = client(&cert_pem, http2)
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /healthz over https ({want:?}): {e:?}"));
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), want);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }

    // The same request in plain HTTP gets no HTTP answer.
    let mut plain = TcpStream::connect(addr(&server)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&answer)
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = http
        .get(format!("http://{}/healthz", addr(&server)))
        .send()
        .await;
    assert!(r.is_err(), "plain http answered: {r:?}");

    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = untrusting
        .get(format!("{}/healthz", server.url))
        .send()
        .await;
    assert!(r.is_err(), "an untrusted certificate was accepted: {r:?}");

    // The server is still up after the refused connections.
    let r = client(&cert_pem, false)
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Runs `throughcare serve ARGS` expecting it to refuse to start: its stderr.
fn refused(data: &Path, args: &[&str]) -> String {
    let mut child = Command::new(binary())
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn throughcare serve");
    for _ in 0..400 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve {args:?} did not exit within 10 s");
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "serve {args:?} exited 0");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(
        stderr.lines().count(),
        1,
        "serve {args:?}: expected one line on stderr, got:\n{stderr}"
    );
    stderr
}

#[test]
fn a_public_address_needs_auth_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let line = refused(&data, &["--listen", "0.0.0.0:0"]);
    assert!(line.contains("--auth"), "{line}");

    // A minimal valid auth file: one auditor (the token itself is never used).
    let auth = dir.path().join("auth.toml");
    std::fs::write(
        &auth,
        format!(
            "[[principal]]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{}\"\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let auth = auth.to_str().unwrap();
    let line = refused(&data, &["--listen", "0.0.0.0:0", "--auth", auth]);
    assert!(
        line.contains("--tls-cert") && line.contains("--behind-tls-proxy"),
        "{line}"
    );
}

#[test]
fn bad_tls_files_are_refused_at_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (cert, key, _) = self_signed(dir.path());
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    for (c, k, needle) in [
        (s(&missing), s(&key), "missing.pem"),
        (s(&junk), s(&key), "junk.pem"),
        (s(&cert), s(&cert), "no PEM private key"),
    ] {
        let line = refused(
            &data,
            &["--listen", "127.0.0.1:0", "--tls-cert", &c, "--tls-key", &k],
        );
        assert!(line.contains(needle), "{line}");
    }
}

/// The TLS listener does not keep a connection that never finishes its handshake: 100
/// connections that send half a ClientHello (and then nothing) are closed by the server
/// within its handshake timeout (10 s), and it still answers afterwards. The HTTP/1 header
/// timeout after the handshake is the same code as on plain HTTP (`listen.rs`), which the
/// attack suite tries with 200 slow connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = self_signed(dir.path());
    let server = start_tls(&dir.path().join("data"), &cert, &key);
    let host = addr(&server).to_string();
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let host = host.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&host).expect("connect");
                // A TLS record header announcing a 512-byte handshake, then silence.
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut buf = [0u8; 64];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return true,
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
                        Err(_) => return true,
                    }
                }
            })
        })
        .collect();
    let closed = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|c| *c)
        .count();
    let took = started.elapsed();
    assert_eq!(closed, 100, "stalled handshakes left open after {took:?}");
    assert!(took < Duration::from_secs(15), "closed only after {took:?}");
    let r = client(&cert_pem, false)
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("healthz after the stalled handshakes");
    assert_eq!(r.status(), 200);
}
