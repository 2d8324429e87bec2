//! Test support for the HMPPS consumer (the tests crate may not import async-nats): make a
//! stream standing in for the SQS-fed one, publish messages to it, read a stream's
//! messages back (e.g. the dead-letter capture), and see whether the durable consumer has
//! settled everything. Synthetic data only; for tests, never for the ledger itself.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, consumer::pull, stream};

use crate::HMPPS_CONSUMER;

async fn context(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url)
        .await
        .expect("connect to the test nats-server");
    jetstream::new(client)
}

/// Creates stream `name` capturing `subjects` (file storage, one replica).
pub async fn create_stream(url: &str, name: &str, subjects: &[&str]) {
    context(url)
        .await
        .create_stream(stream::Config {
            name: name.to_string(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create stream {name}: {e}"));
}

/// Publishes `payload` to `subject` through JetStream; returns the stream sequence.
pub async fn publish(url: &str, subject: &str, payload: Vec<u8>) -> u64 {
    context(url)
        .await
        .publish(subject.to_string(), payload.into())
        .await
        .expect("publish")
        .await
        .expect("publish ack")
        .sequence
}

/// One stored message: its headers (first value of each) and payload.
#[derive(Debug, Clone)]
pub struct Stored {
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// Every message of stream `name`, in order.
pub async fn messages(url: &str, name: &str) -> Vec<Stored> {
    let js = context(url).await;
    let mut s = js.get_stream(name).await.expect("get stream");
    let last = s.info().await.expect("stream info").state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let Ok(m) = s.get_raw_message(seq).await else {
            continue;
        };
        let headers = m
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.first()?.to_string())))
            .collect();
        out.push(Stored {
            headers,
            payload: m.payload.to_vec(),
        });
    }
    out
}

/// (messages not yet delivered, delivered but not yet acknowledged) of the HMPPS durable
/// consumer on `stream`; `None` while it does not exist.
pub async fn consumer_backlog(url: &str, stream: &str) -> Option<(u64, usize)> {
    let js = context(url).await;
    let s = js.get_stream(stream).await.ok()?;
    let mut c = s.get_consumer::<pull::Config>(HMPPS_CONSUMER).await.ok()?;
    let info = c.info().await.ok()?;
    Some((info.num_pending, info.num_ack_pending))
}
