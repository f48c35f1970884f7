// A stock automerge-repo client, driven by tests/tests/automerge_repo.rs against the real relay.
//
//   node client.mjs read    WS URL                 prints the document as JSON
//   node client.mjs write   WS URL NOTE_ID TEXT FIELD VALUE
//                                                  adds a note and sets a field, then reads
//                                                  them back through a second connection
//   node client.mjs watch   WS URL FIELD VALUE     waits until FIELD shows VALUE
//   node client.mjs prepend WS URL NOTE_ID TEXT    inserts TEXT at the start of a note's body
//   node client.mjs ephemeral WS URL               two peers open URL; one broadcasts a cursor
//                                                  and prints what the other received
//   node client.mjs raw-write WS URL FIELD VALUE   the wire by hand: join, sync, write; prints
//                                                  what the relay answered and whether it closed
//   node client.mjs raw-join WS                    join only; prints the relay's answer
//
// Every command prints one JSON line and exits 0; a document the relay will not give is
// {"unavailable": "..."}. Only the pinned npm packages are used (package-lock.json).

import { Repo, cbor, parseAutomergeUrl } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import * as A from "@automerge/automerge";
import WebSocket from "ws";

const [command, ws, url, ...args] = process.argv.slice(2);
const TIMEOUT = 20_000;

function print(value) {
  // JSON.stringify throws on a BigInt: a document a JS app cannot serialise fails here.
  process.stdout.write(JSON.stringify(value) + "\n");
}

function connect() {
  return new Repo({ network: [new WebSocketClientAdapter(ws, 500)] });
}

/// The document's handle, or what to print when the relay does not give it.
class Unavailable {
  constructor(e) {
    this.unavailable = String(e?.message ?? e);
  }
}

async function open(repo) {
  try {
    return await repo.find(url);
  } catch (e) {
    return new Unavailable(e);
  }
}

/// Plain JSON of a document: Automerge's immutable strings as strings.
function plain(doc) {
  return JSON.parse(JSON.stringify(doc));
}

async function read() {
  const repo = connect();
  const handle = await open(repo);
  if (handle instanceof Unavailable) return handle;
  return plain(handle.doc());
}

function until(handle, test) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out waiting for a change")), TIMEOUT);
    const check = () => {
      const doc = handle.doc();
      if (doc && test(plain(doc))) {
        clearTimeout(timer);
        handle.off("change", check);
        resolve(plain(doc));
      }
    };
    handle.on("change", check);
    check();
  });
}

async function write(noteId, text, field, value) {
  const repo = connect();
  const handle = await open(repo);
  if (handle instanceof Unavailable) return handle;
  handle.change(d => {
    d.notes[noteId] = { created_at: Date.now(), text };
    d[field] = value;
  });
  // Read back through a second connection: the relay stored it, not just this process.
  const again = connect();
  const other = await open(again);
  if (other instanceof Unavailable) return other;
  return await until(other, d => d.notes?.[noteId]?.text === text && d[field] === value);
}

async function watch(field, value) {
  const repo = connect();
  const handle = await open(repo);
  if (handle instanceof Unavailable) return handle;
  print({ watching: true });
  return await until(handle, d => String(d[field]) === value);
}

async function prepend(noteId, text) {
  const repo = connect();
  const handle = await open(repo);
  if (handle instanceof Unavailable) return handle;
  handle.change(d => A.splice(d, ["notes", noteId, "text"], 0, 0, text));
  const again = connect();
  const other = await open(again);
  return await until(other, d => String(d.notes?.[noteId]?.text ?? "").startsWith(text));
}

async function ephemeral() {
  const [one, two] = [connect(), connect()];
  const a = await open(one);
  const b = await open(two);
  if (a instanceof Unavailable) return a;
  if (b instanceof Unavailable) return b;
  const got = new Promise(resolve => b.on("ephemeral-message", e => resolve(e.message)));
  // Broadcast until it arrives: the relay passes it on once both peers have the record open.
  let n = 0;
  const timer = setInterval(() => a.broadcast({ cursor: 7, n: n++ }), 200);
  const message = await Promise.race([
    got,
    new Promise((_, reject) => setTimeout(() => reject(new Error("no ephemeral message")), TIMEOUT)),
  ]);
  clearInterval(timer);
  return { received: message };
}

/// A raw automerge-repo connection: messages in order, and whether the socket closed.
function socket() {
  const s = new WebSocket(ws);
  s.binaryType = "arraybuffer";
  const inbox = [];
  let wake = null;
  let closed = false;
  s.on("message", data => {
    inbox.push(cbor.decode(new Uint8Array(data)));
    wake?.();
  });
  s.on("close", () => {
    closed = true;
    wake?.();
  });
  s.on("error", () => {});
  const next = (ms = 3000) =>
    new Promise(resolve => {
      const timer = setTimeout(() => resolve(null), ms);
      const go = () => {
        if (inbox.length || closed) {
          clearTimeout(timer);
          wake = null;
          resolve(inbox.shift() ?? null);
        }
      };
      wake = go;
      go();
    });
  const opened = new Promise(resolve => s.on("open", resolve));
  const send = m => s.send(cbor.encode(m));
  return { opened, next, send, closed: () => closed };
}

async function rawJoin() {
  const s = socket();
  await s.opened;
  const me = "raw-" + Math.random().toString(36).slice(2);
  s.send({ type: "join", senderId: me, peerMetadata: {}, supportedProtocolVersions: ["1"] });
  const answer = await s.next();
  await s.next();
  return { answer, closed: s.closed() };
}

async function rawWrite(field, value) {
  const s = socket();
  await s.opened;
  const me = "raw-" + Math.random().toString(36).slice(2);
  s.send({ type: "join", senderId: me, peerMetadata: {}, supportedProtocolVersions: ["1"] });
  const peer = await s.next();
  if (peer?.type !== "peer") return { answer: peer, closed: s.closed() };
  const documentId = parseAutomergeUrl(url).documentId;
  let doc = A.init();
  let state = A.initSyncState();
  let type = "request";
  for (let round = 0; round < 10; round++) {
    const [next, message] = A.generateSyncMessage(doc, state);
    state = next;
    if (!message) break;
    s.send({ type, senderId: me, targetId: peer.senderId, documentId, data: message });
    type = "sync";
    // The relay answers only while it has something to say.
    const reply = await s.next(1000);
    if (!reply) break;
    if (reply.type !== "sync") return { answer: reply, closed: s.closed() };
    [doc, state] = A.receiveSyncMessage(doc, state, reply.data);
  }
  const before = plain(doc)[field];
  doc = A.change(doc, d => {
    d[field] = value;
  });
  const [next, message] = A.generateSyncMessage(doc, state);
  state = next;
  s.send({ type: "sync", senderId: me, targetId: peer.senderId, documentId, data: message });
  const answer = await s.next();
  await s.next();
  return { read: before, answer, closed: s.closed() };
}

const commands = {
  read: () => read(),
  write: () => write(...args),
  watch: () => watch(...args),
  prepend: () => prepend(...args),
  ephemeral: () => ephemeral(),
  "raw-write": () => rawWrite(...args),
  "raw-join": () => rawJoin(),
};

const run = commands[command];
if (!run) {
  console.error(`unknown command ${command}; see the top of client.mjs`);
  process.exit(2);
}
try {
  print(await run());
  process.exit(0);
} catch (e) {
  console.error(e?.stack ?? String(e));
  process.exit(1);
}
