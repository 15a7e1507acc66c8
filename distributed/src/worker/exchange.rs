//! Worker-to-worker transfers. A worker sends a buffer to another worker itself
//! ([`Exchange::send`]: over its own mutually-authenticated connection, with its worker
//! identity as the client certificate) and keeps what other workers deposit for its sessions in
//! an inbox ([`Exchange::deposit`], [`Exchange::take`]), keyed by a ticket the client chose.
//! The client only orders the two halves; the data never passes through it.

use crate::protocol::Command;
use crate::remote::{Connection, Heartbeat, CHUNK_BYTES};
use crate::transport::Security;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most bytes waiting in a worker's inbox at once.
pub(crate) const INBOX_LIMIT: usize = 4 << 30;
/// A parcel nobody received for this long is dropped (its client failed between the halves).
const PARCEL_TTL: Duration = Duration::from_secs(120);
/// Deposit chunks sent before the first is answered.
const CHUNKS_IN_FLIGHT: usize = 4;

struct Parcel {
    data: Vec<u8>,
    total: usize,
    arrived: Instant,
}

#[derive(Default)]
struct Inbox {
    parcels: HashMap<u64, Parcel>,
    bytes: usize,
}

/// A worker's inbox and its connections to other workers, shared by its sessions.
pub(crate) struct Exchange {
    security: Security,
    inbox: Mutex<Inbox>,
    links: Mutex<HashMap<(String, String), Arc<Connection>>>,
}

impl Exchange {
    /// An exchange connecting to peers secured as `security` (the worker's own identity).
    pub(crate) fn new(security: Security) -> Arc<Exchange> {
        Arc::new(Exchange {
            security,
            inbox: Mutex::new(Inbox::default()),
            links: Mutex::new(HashMap::new()),
        })
    }

    /// Adds chunk `data` at `offset` of the `total`-byte parcel `ticket`.
    pub(crate) fn deposit(
        &self,
        ticket: u64,
        offset: u64,
        total: u64,
        data: &[u8],
    ) -> Result<(), String> {
        let (offset, total) = (offset as usize, total as usize);
        let mut inbox = self.inbox.lock();
        let now = Instant::now();
        let stale: Vec<u64> = inbox
            .parcels
            .iter()
            .filter(|(_, p)| now.duration_since(p.arrived) > PARCEL_TTL)
            .map(|(&t, _)| t)
            .collect();
        for t in stale {
            let p = inbox.parcels.remove(&t).expect("listed above");
            inbox.bytes -= p.total;
        }
        if offset.checked_add(data.len()).is_none_or(|end| end > total) {
            return Err(format!(
                "deposit of bytes {offset}..{} of a {total}-byte parcel",
                offset.saturating_add(data.len())
            ));
        }
        if offset == 0 {
            if inbox.parcels.contains_key(&ticket) {
                return Err(format!("parcel {ticket:#x} already exists"));
            }
            if inbox.bytes.saturating_add(total) > INBOX_LIMIT {
                return Err(format!(
                    "a {total}-byte parcel would exceed the inbox limit of {INBOX_LIMIT} bytes ({} waiting)",
                    inbox.bytes
                ));
            }
            inbox.bytes += total;
            inbox.parcels.insert(
                ticket,
                Parcel {
                    data: Vec::with_capacity(total),
                    total,
                    arrived: now,
                },
            );
        }
        let parcel = inbox
            .parcels
            .get_mut(&ticket)
            .filter(|p| p.data.len() == offset && p.total == total)
            .ok_or_else(|| {
                format!("deposit chunk at {offset} of parcel {ticket:#x} is out of order")
            })?;
        parcel.data.extend_from_slice(data);
        Ok(())
    }

    /// Removes the complete parcel `ticket` of `bytes` bytes from the inbox.
    pub(crate) fn take(&self, ticket: u64, bytes: u64) -> Result<Vec<u8>, String> {
        let mut inbox = self.inbox.lock();
        let parcel = inbox
            .parcels
            .get(&ticket)
            .ok_or_else(|| format!("no parcel {ticket:#x} arrived"))?;
        if parcel.data.len() != parcel.total || parcel.total as u64 != bytes {
            return Err(format!(
                "parcel {ticket:#x} holds {} of {} bytes, {bytes} expected",
                parcel.data.len(),
                parcel.total
            ));
        }
        let parcel = inbox.parcels.remove(&ticket).expect("found above");
        inbox.bytes -= parcel.total;
        Ok(parcel.data)
    }

    /// The session to `peer`'s `device`, opened on first use (and again after a loss).
    fn link(&self, peer: &str, device: &str) -> Result<Arc<Connection>, String> {
        let key = (peer.to_string(), device.to_string());
        if let Some(conn) = self.links.lock().get(&key) {
            if conn.lost().is_none() {
                return Ok(conn.clone());
            }
        }
        let addr = peer
            .to_socket_addrs()
            .map_err(|e| format!("peer {peer}: {e}"))?
            .next()
            .ok_or_else(|| format!("peer {peer} resolves to no address"))?;
        let (conn, _) = Connection::open(addr, device, &self.security, Heartbeat::default())
            .map_err(|e| format!("connecting to peer {peer}: {e}"))?;
        self.links.lock().insert(key, conn.clone());
        Ok(conn)
    }

    /// Deposits `data` under `ticket` at `peer`'s `device`, in chunks of at most
    /// [`CHUNK_BYTES`] with a few in flight; returns when the peer holds all of it.
    pub(crate) fn send(
        &self,
        data: &[u8],
        peer: &str,
        device: &str,
        ticket: u64,
        deadline: Duration,
    ) -> Result<(), String> {
        let conn = self.link(peer, device)?;
        let total = data.len() as u64;
        let chunks = data.chunks(CHUNK_BYTES.max(1));
        let chunks: Box<dyn Iterator<Item = &[u8]>> = if data.is_empty() {
            Box::new(std::iter::once(&data[..0]))
        } else {
            Box::new(chunks)
        };
        let mut in_flight = VecDeque::new();
        let fail = |e: crate::Error| format!("sending to peer {peer}: {e}");
        for (i, chunk) in chunks.enumerate() {
            if in_flight.len() >= CHUNKS_IN_FLIGHT {
                conn.wait(in_flight.pop_front().expect("non-empty"), deadline)
                    .map_err(fail)?;
            }
            let deposit = Command::Deposit {
                ticket,
                offset: (i * CHUNK_BYTES) as u64,
                total,
                bytes: chunk.len() as u64,
            };
            let payload = vec![Bytes::copy_from_slice(chunk)];
            in_flight.push_back(conn.send(vec![deposit], payload, deadline).map_err(fail)?);
        }
        for answer in in_flight {
            conn.wait(answer, deadline).map_err(fail)?;
        }
        Ok(())
    }
}
