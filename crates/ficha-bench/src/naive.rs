//! The baseline: naive per-document Automerge sync over a WebSocket, as automerge-repo and
//! samod do it. One `sync::State` per document per peer; every message is
//! `[document index: u32 BE][automerge sync message]`; each side answers whenever
//! `generate_sync_message` has something to say, until both are quiet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use automerge::Automerge;
use automerge::sync::{Message as SyncMessage, State, SyncDoc};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// What one naive sync cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    /// Wall time.
    pub secs: f64,
    /// Payload bytes, both directions.
    pub bytes: f64,
    /// Messages, both directions.
    pub messages: f64,
}

fn frame(idx: u32, msg: SyncMessage) -> Vec<u8> {
    let mut out = idx.to_be_bytes().to_vec();
    out.extend(msg.encode());
    out
}

fn parse(bytes: &[u8]) -> Result<(usize, SyncMessage)> {
    let idx = u32::from_be_bytes(bytes.get(..4).context("short message")?.try_into()?) as usize;
    Ok((idx, SyncMessage::decode(&bytes[4..])?))
}

/// Serves `docs` over naive per-document sync; returns the address.
pub async fn serve(docs: Vec<Automerge>) -> Result<SocketAddr> {
    let docs = Arc::new(Mutex::new(docs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let docs = docs.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let mut states: HashMap<usize, State> = HashMap::new();
                while let Some(Ok(Message::Binary(b))) = ws.next().await {
                    let Ok((idx, msg)) = parse(&b) else { return };
                    let reply = {
                        let mut docs = docs.lock().unwrap_or_else(|p| p.into_inner());
                        let Some(doc) = docs.get_mut(idx) else { return };
                        let state = states.entry(idx).or_default();
                        if doc.receive_sync_message(state, msg).is_err() {
                            return;
                        }
                        doc.generate_sync_message(state)
                    };
                    if let Some(r) = reply
                        && ws
                            .send(Message::Binary(frame(idx as u32, r).into()))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

fn in_sync(doc: &Automerge, state: &State) -> bool {
    let mut mine = doc.get_heads();
    mine.sort();
    state.their_heads.as_ref().is_some_and(|t| {
        let mut t = t.clone();
        t.sort();
        t == mine
    })
}

/// Syncs `docs` (index-aligned with the server's) with the naive server at `addr`.
pub async fn sync_all(addr: SocketAddr, docs: &mut [Automerge]) -> Result<Cost> {
    let start = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    let mut states: Vec<State> = (0..docs.len()).map(|_| State::new()).collect();
    let mut cost = Cost::default();
    for (i, doc) in docs.iter().enumerate() {
        if let Some(m) = doc.generate_sync_message(&mut states[i]) {
            let f = frame(i as u32, m);
            cost.bytes += f.len() as f64;
            cost.messages += 1.0;
            ws.feed(Message::Binary(f.into())).await?;
        }
    }
    ws.flush().await?;
    let mut pending = docs.len();
    let mut done = vec![false; docs.len()];
    while pending > 0 {
        let Some(msg) = ws.next().await else {
            anyhow::bail!("naive server closed with {pending} documents pending");
        };
        let Message::Binary(b) = msg? else { continue };
        cost.bytes += b.len() as f64;
        cost.messages += 1.0;
        let (idx, m) = parse(&b)?;
        let doc = docs.get_mut(idx).context("unknown document index")?;
        doc.receive_sync_message(&mut states[idx], m)?;
        if let Some(reply) = doc.generate_sync_message(&mut states[idx]) {
            let f = frame(idx as u32, reply);
            cost.bytes += f.len() as f64;
            cost.messages += 1.0;
            ws.send(Message::Binary(f.into())).await?;
        }
        if !done[idx] && in_sync(doc, &states[idx]) {
            done[idx] = true;
            pending -= 1;
        }
    }
    cost.secs = start.elapsed().as_secs_f64();
    let _ = ws.close(None).await;
    Ok(cost)
}
