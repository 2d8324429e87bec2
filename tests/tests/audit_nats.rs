//! The audit tree on JetStream, end to end: two `serve --nats` processes (the real binary)
//! share one stream, each with its own signing key (`throughcare keygen`) and the same
//! `--origin`. Submissions are spread across both; then
//!
//! - both processes' kept checkpoints of the same size state the same tree head (origin,
//!   size, root), and that root is the RFC 9162 root computed here from the stored bytes
//!   of `/v1/ledger/entries` (which both serve identically);
//! - `throughcare audit verify --url` passes against each with its own key, and with
//!   `--since` an earlier checkpoint a witness received;
//! - a witness subscribed on core NATS to `throughcare.checkpoint` (a few lines of the
//!   NATS text protocol over TCP, no client library) receives checkpoints from both
//!   processes, each of which opens with its signer's verifier key and states the root
//!   of the same tree at its size.
//!
//! Only EventLog-level behaviour is relied on: acknowledged positions are dense
//! (1, 2, 3..) and every process follows the same stream.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::json;
use support::{binary, event, minutes_ago as at, nhs_number, nomis, stderr, Client, Server};
use throughcare_nats::testkit::NatsServer;
use throughcare_nats::CHECKPOINT_SUBJECT;
use throughcare_tlog::{Checkpoint, Hash, Tree, VerifierKey};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The origin both processes sign under (their checkpoints agree only with one origin).
const ORIGIN: &str = "throughcare.test/jetstream-audit";

/// `throughcare keygen` into `dir/name`: (signing key file, verifier key).
fn keygen(dir: &Path, name: &str) -> (PathBuf, VerifierKey) {
    let (file, vkey) = support::keygen(dir, name);
    (file, VerifierKey::parse(&vkey).expect("a verifier key"))
}

/// One `serve --nats` process with its data directory and signing key.
struct Node {
    data: PathBuf,
    key: PathBuf,
    server: Server,
}

impl Node {
    fn start(data: &Path, key: &Path, nats: &str) -> Node {
        Node {
            data: data.to_path_buf(),
            key: key.to_path_buf(),
            server: start_serve(data, key, nats),
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.server.url)
    }

    /// SIGKILL and start again on the same data directory: once its tree catches up with
    /// the head it started at, the process signs a checkpoint of exactly that size.
    fn restart(&mut self, nats: &str) {
        self.server.kill();
        self.server = start_serve(&self.data, &self.key, nats);
    }
}

fn start_serve(data: &Path, key: &Path, nats: &str) -> Server {
    Server::start_with(
        data,
        &[
            "--nats",
            nats,
            "--signing-key",
            key.to_str().unwrap(),
            "--origin",
            ORIGIN,
        ],
    )
}

/// A witness on core NATS: every message on `throughcare.checkpoint`, in arrival order.
/// Speaks the NATS client protocol (CONNECT, SUB, PING/PONG, MSG) directly, as an outside
/// party with nothing but TCP could.
async fn witness(url: &str) -> Arc<Mutex<Vec<String>>> {
    let addr = url.trim_start_matches("nats://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect to nats-server");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    read.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("INFO "), "nats-server said {line:?}");
    write
        .write_all(
            format!(
                "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"audit-witness\"}}\r\nSUB {CHECKPOINT_SUBJECT} 1\r\nPING\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The server answers PING after it has processed the SUB before it.
    loop {
        line.clear();
        read.read_line(&mut line).await.unwrap();
        assert!(!line.starts_with("-ERR"), "nats-server refused: {line}");
        if line.trim_end() == "PONG" {
            break;
        }
    }
    let notes = Arc::new(Mutex::new(Vec::new()));
    let kept = notes.clone();
    tokio::spawn(async move {
        let mut line = String::new();
        loop {
            line.clear();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first().copied() {
                // MSG <subject> <sid> [reply-to] <#bytes>
                Some("MSG") => {
                    let len: usize = words.last().unwrap().parse().expect("MSG payload size");
                    let mut payload = vec![0u8; len + 2];
                    read.read_exact(&mut payload).await.unwrap();
                    payload.truncate(len);
                    kept.lock()
                        .unwrap()
                        .push(String::from_utf8(payload).expect("a UTF-8 checkpoint"));
                }
                Some("PING") => write.write_all(b"PONG\r\n").await.unwrap(),
                Some("-ERR") => panic!("nats-server error to the witness: {line}"),
                _ => {}
            }
        }
    });
    notes
}

/// Referrals for new people `from..from + n`, all at once, person `s`'s referral posted to
/// one process and its acceptance to the other (alternating which). Returns the
/// acknowledged positions.
async fn submit(clients: &[Client; 2], from: u64, n: u64) -> Vec<u64> {
    let mut tasks = Vec::new();
    for s in from..from + n {
        let (first, second) = if s % 2 == 0 {
            (clients[0].clone(), clients[1].clone())
        } else {
            (clients[1].clone(), clients[0].clone())
        };
        tasks.push(tokio::spawn(async move {
            let who = json!({"nomis": nomis(9000 + s), "nhs_number": nhs_number(9000 + s)});
            let referral = format!("R-JS-{s:05}");
            let r = first
                .post(&event(
                    "referral.received",
                    &format!("js-audit-{s}-ref"),
                    &at(90),
                    json!({"person": who, "referral_id": referral, "referrer": {"kind": "PRISON_STAFF"},
                           "prison": "SPI", "vulnerabilities": []}),
                ))
                .await;
            assert_eq!(r.status, 201, "{r:?}");
            let p1 = r.body["position"].as_u64().unwrap();
            let r = second
                .post(&event(
                    "referral.accepted",
                    &format!("js-audit-{s}-acc"),
                    &at(89),
                    json!({"person": who, "referral_id": referral}),
                ))
                .await;
            assert_eq!(r.status, 201, "{r:?}");
            vec![p1, r.body["position"].as_u64().unwrap()]
        }));
    }
    let mut positions = Vec::new();
    for t in tasks {
        positions.extend(t.await.unwrap());
    }
    positions
}

/// Every entry `1..=head` as served by `c`: (position, stored bytes).
async fn entries(c: &Client, head: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while (out.len() as u64) < head {
        let from = out.len() as u64 + 1;
        let r = c
            .get(&format!("/v1/ledger/entries?from={from}&limit=1000"))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let page = r.body["entries"].as_array().unwrap().clone();
        assert!(!page.is_empty(), "entries end at {} of {head}", from - 1);
        for e in page.into_iter().take((head + 1 - from) as usize) {
            out.push((
                e["position"].as_u64().unwrap(),
                e["stored"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The RFC 9162 root of every prefix `0..=n` of the stored bytes.
fn roots(stored: &[(u64, String)]) -> Vec<Hash> {
    let mut tree = Tree::new();
    let mut out = vec![tree.root()];
    for (_, s) in stored {
        tree.append(s.as_bytes());
        out.push(tree.root());
    }
    out
}

/// The kept checkpoint of `size` on `c`, waiting for the process to sign it.
async fn checkpoint_of(c: &Client, size: u64) -> String {
    for _ in 0..600 {
        let r = c.get(&format!("/v1/ledger/checkpoint?size={size}")).await;
        if r.status == 200 {
            return r.body.as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} signed no checkpoint of size {size}", c.url);
}

async fn audit_verify(url: &str, vkey: &VerifierKey, since: Option<&Path>) -> Output {
    let mut command = tokio::process::Command::new(binary());
    command
        .args(["audit", "verify", "--url", url, "--key"])
        .arg(vkey.to_string())
        .env("RUST_LOG", "warn")
        .env_remove("THROUGHCARE_TOKEN");
    if let Some(file) = since {
        command.arg("--since").arg(file);
    }
    command
        .output()
        .await
        .expect("run throughcare audit verify")
}

/// The witness's notes opened with the key that signed each: (signer index, checkpoint).
fn opened(notes: &[String], keys: &[&VerifierKey; 2]) -> Vec<(usize, Checkpoint)> {
    notes
        .iter()
        .map(|note| {
            let signed: Vec<(usize, Checkpoint)> = keys
                .iter()
                .enumerate()
                .filter_map(|(i, k)| k.open(note).ok().map(|c| (i, c)))
                .collect();
            assert_eq!(
                signed.len(),
                1,
                "a note on {CHECKPOINT_SUBJECT} opens with exactly one of the two keys: {note}"
            );
            signed.into_iter().next().unwrap()
        })
        .collect()
}

/// Waits until the witness holds a note of `size` from each of the two signers.
async fn witnessed(notes: &Mutex<Vec<String>>, keys: &[&VerifierKey; 2], size: u64) {
    for _ in 0..200 {
        let signers: BTreeSet<usize> = opened(&notes.lock().unwrap(), keys)
            .into_iter()
            .filter(|(_, c)| c.size == size)
            .map(|(i, _)| i)
            .collect();
        if signers.len() == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the witness did not receive a checkpoint of size {size} from both processes: {:?}",
        notes.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_serve_processes_on_one_stream_compute_one_tree() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats"));
    let url = nats.url();
    let notes = witness(&url).await;
    let (key_a, vkey_a) = keygen(dir.path(), "jetstream-a");
    let (key_b, vkey_b) = keygen(dir.path(), "jetstream-b");
    let keys = [&vkey_a, &vkey_b];
    let mut a = Node::start(&dir.path().join("a"), &key_a, &url);
    let mut b = Node::start(&dir.path().join("b"), &key_b, &url);

    // Two rounds of submissions spread over both processes, each followed by a restart of
    // both, so that each signs a checkpoint at exactly the head (sizes otherwise depend
    // on when each one's timer fires).
    let mut acked = Vec::new();
    let mut heads = Vec::new();
    for (round, (from, n)) in [(0u64, 12u64), (12, 20)].into_iter().enumerate() {
        acked.extend(submit(&[a.client(), b.client()], from, n).await);
        let head = acked.len() as u64;
        let positions: BTreeSet<u64> = acked.iter().copied().collect();
        assert_eq!(
            positions,
            (1..=head).collect::<BTreeSet<u64>>(),
            "round {round}: the acknowledged positions are not 1..={head}"
        );
        a.restart(&url);
        b.restart(&url);
        heads.push(head);
    }
    let head = *heads.last().unwrap();
    let (ca, cb) = (a.client(), b.client());

    // One log: both serve the same stored bytes, position by position.
    let stored = entries(&ca, head).await;
    assert_eq!(
        stored,
        entries(&cb, head).await,
        "the two processes serve different entries"
    );
    assert_eq!(
        stored.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=head).collect::<Vec<_>>()
    );
    let roots = roots(&stored);

    // The same size on both: the same tree head, the root of those stored bytes.
    for &size in &heads {
        let on_a = vkey_a.open(&checkpoint_of(&ca, size).await).unwrap();
        let on_b = vkey_b.open(&checkpoint_of(&cb, size).await).unwrap();
        assert_eq!(on_a, on_b, "the two checkpoints of size {size} differ");
        assert_eq!(
            on_a,
            Checkpoint {
                origin: ORIGIN.into(),
                size,
                root: roots[size as usize],
            },
            "the checkpoint of size {size} is not the tree of the stored bytes"
        );
        // Each process signed with its own key only.
        assert!(vkey_b.open(&checkpoint_of(&ca, size).await).is_err());
    }

    // The witness: every checkpoint either process published is the one tree's head.
    for &size in &heads {
        witnessed(&notes, &keys, size).await;
    }
    let received = opened(&notes.lock().unwrap(), &keys);
    let mut by_size: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for (signer, c) in &received {
        assert_eq!(c.origin, ORIGIN);
        assert!(c.size <= head, "a checkpoint beyond the log: {c:?}");
        assert_eq!(
            c.root,
            roots[c.size as usize],
            "a published checkpoint of size {} (signer {signer}) is not the tree's root {}",
            c.size,
            BASE64.encode(roots[c.size as usize])
        );
        by_size.entry(c.size).or_default().insert(*signer);
    }
    eprintln!("witnessed checkpoints (size -> signers): {by_size:?}");

    // An auditor with each process's verifier key: the whole log verifies against
    // either, also since the first round's checkpoint the witness kept from that process.
    let first_round = heads[0];
    for (i, (c, vkey)) in [(&ca, &vkey_a), (&cb, &vkey_b)].into_iter().enumerate() {
        let o = audit_verify(&c.url, vkey, None).await;
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "verify {}: {}{out}", c.url, stderr(&o));
        assert!(out.contains(&format!("size {head}\n")), "{out}");
        assert!(
            out.contains(&format!("root {}\n", BASE64.encode(roots[head as usize]))),
            "{out}"
        );
        assert!(out.contains("persons 32"), "{out}");

        let kept = notes
            .lock()
            .unwrap()
            .iter()
            .find(|n| vkey.open(n).is_ok_and(|c| c.size == first_round))
            .cloned()
            .expect("the witness kept the first round's checkpoint");
        let file = dir.path().join(format!("witnessed-{i}"));
        std::fs::write(&file, kept).unwrap();
        let o = audit_verify(&c.url, vkey, Some(&file)).await;
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "verify --since: {}{out}", stderr(&o));
        assert!(
            out.contains(&format!(
                "consistent with the earlier checkpoint of size {first_round}"
            )),
            "{out}"
        );
    }
    // A checkpoint verifies only with its signer's key.
    let o = audit_verify(&ca.url, &vkey_b, None).await;
    assert!(!o.status.success(), "A's checkpoint verified with B's key");
    drop((a, b));
}
