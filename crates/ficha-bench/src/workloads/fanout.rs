//! Live fan-out: one writer uploads small changes; every subscriber must receive each one.
//! Against a plain tokio-tungstenite broadcast server forwarding frames of the same sizes.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{Barrier, mpsc};
use tokio_tungstenite::tungstenite::Message;

use ficha_core::frame::{ByteBuf, DEFAULT_MAX_FRAME, DocChanges, Frame, Hello, Upload};
use ficha_core::ids::actor_for;
use ficha_core::{DocId, ReplicaId};

use crate::fixtures::{Scratch, company};
use crate::report::{Row, percentile};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, f: &Frame) -> Result<()> {
    ws.send(Message::Binary(f.encode().into())).await?;
    Ok(())
}

async fn recv(ws: &mut Ws) -> Result<Frame> {
    loop {
        match ws.next().await.context("closed")?? {
            Message::Binary(b) => return Ok(Frame::decode(&b, DEFAULT_MAX_FRAME)?),
            _ => continue,
        }
    }
}

/// Arrival times (seconds since `base`) of each change at one subscriber, and bytes received.
type Arrivals = (Vec<f64>, usize);

async fn subscriber(
    url: String,
    token: String,
    id: u8,
    changes: usize,
    base: Instant,
    ready: Arc<Barrier>,
) -> Result<Arrivals> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    send(
        &mut ws,
        &Frame::Hello(Hello {
            replica: ReplicaId([id; 16]),
            token,
        }),
    )
    .await?;
    recv(&mut ws).await?;
    send(
        &mut ws,
        &Frame::Subscribe {
            company: company(),
            after: 0,
        },
    )
    .await?;
    while !matches!(recv(&mut ws).await?, Frame::CaughtUp { .. }) {}
    ready.wait().await;
    let mut at = vec![f64::NAN; changes];
    let mut bytes = 0;
    let mut got = 0;
    while got < changes {
        let Message::Binary(b) = ws.next().await.context("closed")?? else {
            continue;
        };
        bytes += b.len();
        if let Frame::Feed(page) = Frame::decode(&b, DEFAULT_MAX_FRAME)? {
            let now = base.elapsed().as_secs_f64();
            for e in &page.entries {
                if let Some(slot) = at.get_mut(e.seq as usize - 1) {
                    *slot = now;
                    got += 1;
                }
            }
            send(
                &mut ws,
                &Frame::PageAck {
                    company: page.company,
                    upto: page.upto,
                },
            )
            .await?;
        }
    }
    Ok((at, bytes))
}

fn summarise(sent: &[f64], arrivals: &[Arrivals], elapsed: f64) -> (f64, f64, f64) {
    let mut delays: Vec<f64> = (0..sent.len())
        .map(|i| arrivals.iter().map(|(a, _)| a[i]).fold(0.0, f64::max) - sent[i])
        .map(|d| d * 1e3)
        .collect();
    let bytes: usize = arrivals.iter().map(|(_, b)| *b).sum();
    (
        percentile(&mut delays, 0.5),
        percentile(&mut delays, 0.99),
        bytes as f64 / elapsed / 1e6,
    )
}

/// One writer stands for many replicas' uploads: this measures the relay's forwarding path,
/// so the per-session upload pacing (a fairness policy, not a cost) is off.
fn unpaced() -> ficha_relay::Limits {
    ficha_relay::Limits {
        uploads_per_sec: f64::INFINITY,
        ..ficha_relay::Limits::default()
    }
}

async fn ours(subs: usize, changes: usize) -> Result<((f64, f64, f64), Vec<usize>)> {
    let scratch = Scratch::new()?;
    let dir = scratch.path("relay");
    let relay = ficha_relay::spawn_with(&dir, "127.0.0.1:0".parse()?, unpaced()).await?;
    let out = drive(&[relay.url()], &dir, subs, changes).await;
    relay.stop().await;
    out
}

/// `nodes` relay nodes on one PostgreSQL schema, sharing `dir`'s secret.
pub(crate) async fn on_postgres(
    url: &str,
    schema: &str,
    nodes: usize,
    subs: usize,
    changes: usize,
) -> Result<((f64, f64, f64), Vec<usize>)> {
    let scratch = Scratch::new()?;
    let dir = scratch.path("relay");
    let choice = ficha_relay::StoreChoice::Postgres {
        url: url.to_string(),
        schema: Some(schema.to_string()),
    };
    let mut running = Vec::new();
    for _ in 0..nodes {
        running
            .push(ficha_relay::spawn_on(&choice, &dir, "127.0.0.1:0".parse()?, unpaced()).await?);
    }
    let urls: Vec<String> = running.iter().map(|r| r.url()).collect();
    let out = drive(&urls, &dir, subs, changes).await;
    for r in running {
        r.stop().await;
    }
    out
}

/// The writer on the first node, subscribers spread over all of them.
async fn drive(
    urls: &[String],
    dir: &std::path::Path,
    subs: usize,
    changes: usize,
) -> Result<((f64, f64, f64), Vec<usize>)> {
    let base = Instant::now();
    let ready = Arc::new(Barrier::new(subs + 1));
    let mut tasks = Vec::new();
    for s in 0..subs {
        let token = ficha_relay::issue_token(dir, &format!("sub{s}"), &["bench".into()], true, 1)?;
        tasks.push(tokio::spawn(subscriber(
            urls[s % urls.len()].clone(),
            token,
            (s % 200) as u8 + 1,
            changes,
            base,
            ready.clone(),
        )));
    }
    // The writer: one small change per upload, pipelined.
    let writer = ReplicaId([0xEE; 16]);
    let token = ficha_relay::issue_token(dir, "writer", &["bench".into()], false, 1)?;
    let (mut ws, _) = tokio_tungstenite::connect_async(&urls[0]).await?;
    send(
        &mut ws,
        &Frame::Hello(Hello {
            replica: writer,
            token,
        }),
    )
    .await?;
    recv(&mut ws).await?;
    let mut doc = AutoCommit::new().with_actor(actor_for(writer, 1));
    let mut uploads = Vec::new();
    for i in 0..changes {
        doc.put(ROOT, "status", format!("checked in at desk {i}"))?;
        doc.commit();
        let c = doc.get_last_local_change().context("change")?;
        uploads.push(Frame::Upload(Upload {
            upto: i as u64 + 1,
            docs: vec![DocChanges {
                doc: DocId([0xD0; 16]),
                company: company(),
                changes: vec![ByteBuf::from(c.raw_bytes().to_vec())],
            }],
        }));
    }
    ready.wait().await;
    let start = base.elapsed().as_secs_f64();
    let mut sent = Vec::new();
    for u in &uploads {
        sent.push(base.elapsed().as_secs_f64());
        send(&mut ws, u).await?;
    }
    let mut arrivals = Vec::new();
    for t in tasks {
        arrivals.push(t.await??);
    }
    let elapsed = base.elapsed().as_secs_f64() - start;
    // Frame sizes a subscriber received, for the baseline to forward.
    let per_sub = arrivals.first().map_or(0, |(_, b)| *b) / changes.max(1);
    Ok((summarise(&sent, &arrivals, elapsed), vec![per_sub; changes]))
}

async fn broadcast(subs: usize, sizes: &[usize]) -> Result<(f64, f64, f64)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (sub_tx, mut sub_rx) = mpsc::unbounded_channel::<mpsc::UnboundedSender<bytes_msg::Msg>>();
    let (pub_tx, mut pub_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            let (mut sink, mut stream) = ws.split();
            if n == 0 {
                let pub_tx = pub_tx.clone();
                tokio::spawn(async move {
                    while let Some(Ok(Message::Binary(b))) = stream.next().await {
                        let _ = pub_tx.send(b.to_vec());
                    }
                });
            } else {
                let (tx, mut rx) = mpsc::unbounded_channel::<bytes_msg::Msg>();
                let _ = sub_tx.send(tx);
                tokio::spawn(async move {
                    while let Some(m) = rx.recv().await {
                        if sink.send(Message::Binary(m)).await.is_err() {
                            break;
                        }
                    }
                });
            }
            n += 1;
        }
    });
    let url = format!("ws://{addr}/");
    let (mut writer, _) = tokio_tungstenite::connect_async(&url).await?;
    let base = Instant::now();
    let changes = sizes.len();
    let mut tasks = Vec::new();
    for _ in 0..subs {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
        tasks.push(tokio::spawn(async move {
            let mut at = vec![f64::NAN; changes];
            let mut bytes = 0;
            for _ in 0..changes {
                let Some(Ok(Message::Binary(b))) = ws.next().await else {
                    break;
                };
                bytes += b.len();
                let i = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                at[i] = base.elapsed().as_secs_f64();
            }
            (at, bytes)
        }));
    }
    let mut senders = Vec::new();
    while senders.len() < subs {
        senders.push(sub_rx.recv().await.context("subscriber")?);
    }
    tokio::spawn(async move {
        while let Some(m) = pub_rx.recv().await {
            let m = bytes_msg::Msg::from(m);
            for s in &senders {
                let _ = s.send(m.clone());
            }
        }
    });
    let start = base.elapsed().as_secs_f64();
    let mut sent = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let mut m = vec![0u8; (*size).max(4)];
        m[..4].copy_from_slice(&(i as u32).to_be_bytes());
        sent.push(base.elapsed().as_secs_f64());
        writer.send(Message::Binary(m.into())).await?;
    }
    let mut arrivals = Vec::new();
    for t in tasks {
        arrivals.push(t.await?);
    }
    Ok(summarise(
        &sent,
        &arrivals,
        base.elapsed().as_secs_f64() - start,
    ))
}

mod bytes_msg {
    /// Shared frame bytes, cloned per subscriber without copying.
    pub type Msg = tokio_tungstenite::tungstenite::Bytes;
}

/// The same fan-out on PostgreSQL, one node and three, against one redb relay in this run.
pub async fn cluster(url: &str, subs: usize, changes: usize) -> Result<Vec<Row>> {
    let ((r50, r99, rmbps), _) = ours(subs, changes).await?;
    let tag = std::process::id();
    let mut rows = Vec::new();
    for nodes in [1usize, 3] {
        let schema = format!("bench_cluster_{nodes}_{tag}");
        let ((p50, p99, mbps), _) = on_postgres(url, &schema, nodes, subs, changes).await?;
        let sz = json!({ "nodes": nodes, "subscribers": subs, "changes": changes });
        const BASE: &str = "one relay on redb";
        rows.push(Row::new(
            "cluster",
            format!("p50 delay, {nodes} PostgreSQL node(s)"),
            p50,
            r50,
            "ms",
            BASE,
            sz.clone(),
        ));
        rows.push(Row::new(
            "cluster",
            format!("p99 delay, {nodes} PostgreSQL node(s)"),
            p99,
            r99,
            "ms",
            BASE,
            sz.clone(),
        ));
        rows.push(Row::new(
            "cluster",
            format!("delivered, {nodes} PostgreSQL node(s)"),
            mbps,
            rmbps,
            "MB/s",
            BASE,
            sz,
        ));
        drop_schema(url, &schema).await;
    }
    Ok(rows)
}

async fn drop_schema(url: &str, schema: &str) {
    if let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
    }
}

/// One writer, `subs` subscribers, `changes` small changes.
pub async fn fanout(subs: usize, changes: usize) -> Result<Vec<Row>> {
    let ((p50, p99, mbps), sizes) = ours(subs, changes).await?;
    let (b50, b99, bmbps) = broadcast(subs, &sizes).await?;
    let sz = json!({ "subscribers": subs, "changes": changes, "frame_bytes": sizes.first() });
    const BASE: &str = "plain tokio-tungstenite broadcast";
    Ok(vec![
        Row::new(
            "fanout",
            "p50 delay to every subscriber",
            p50,
            b50,
            "ms",
            BASE,
            sz.clone(),
        ),
        Row::new(
            "fanout",
            "p99 delay to every subscriber",
            p99,
            b99,
            "ms",
            BASE,
            sz.clone(),
        ),
        Row::new(
            "fanout",
            "delivered throughput",
            mbps,
            bmbps,
            "MB/s",
            BASE,
            sz,
        ),
    ])
}
