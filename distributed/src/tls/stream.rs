//! The read and write halves of an established TLS 1.3 connection.

use super::handshake::Established;
use super::record::{
    self, RecordKey, ALERT, APPLICATION_DATA, HANDSHAKE, HEADER, MAX_CIPHERTEXT, MAX_PLAINTEXT,
};
use super::{Kernel, RecordError, CLOSE_NOTIFY, KEY_UPDATE, NEW_SESSION_TICKET};
use parking_lot::Mutex;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Bytes the reader asks the socket for at once (many records per system call).
const READ_BUFFER: usize = 256 << 10;
/// Bytes of sealed records the writer gathers before it sends them (1 MiB measured cheaper
/// than 256 KiB and 4 MiB: fewer wake-ups of the receiving side per byte).
const WRITE_BATCH: usize = 1 << 20;
/// Most bytes of post-handshake messages a peer may leave incomplete.
const MESSAGES_LIMIT: usize = 64 << 10;
/// Bytes one record may take on the wire.
const MAX_RECORD: usize = HEADER + MAX_CIPHERTEXT;
/// A read asking for at least this many bytes receives records straight into the caller's
/// buffer and decrypts them there.
const DIRECT_READ: usize = 2 * MAX_RECORD;

/// What the two halves share: rustls' key schedule, used only on key updates.
struct Shared {
    kernel: Mutex<Kernel>,
    /// The peer asked us to update our sending key; the writer does before its next record.
    update_requested: AtomicBool,
}

/// The receiving half: decrypts records in place, in the caller's buffer when a read asks for
/// several records' worth (the kernel's copy is then the only one), else in one reused buffer
/// of its own.
pub struct TlsReader<R = OwnedReadHalf> {
    tcp: R,
    /// Received bytes; `plain` is decrypted content not yet delivered, `pos..filled` bytes
    /// not yet opened.
    buf: Vec<u8>,
    plain: Range<usize>,
    pos: usize,
    filled: usize,
    rx: Receiving,
}

/// The receiving key and what the records other than data change.
struct Receiving {
    key: RecordKey,
    /// Records opened under `key`.
    opened: u64,
    /// Most records the peer may send under one key.
    limit: u64,
    /// Post-handshake handshake bytes not yet forming a whole message.
    messages: Vec<u8>,
    /// close_notify arrived.
    closed: bool,
    /// Key updates received.
    updates: u64,
    shared: Arc<Shared>,
}

/// The sending half: seals records into one reused buffer, sent in batches.
pub struct TlsWriter<W = OwnedWriteHalf> {
    tcp: W,
    /// Sealed records; `out[sent..]` is still to be written to the socket.
    out: Vec<u8>,
    sent: usize,
    key: RecordKey,
    /// Records sealed under `key`.
    sealed: u64,
    /// A key update is sent before this many records are sealed under one key.
    records_per_key: u64,
    /// close_notify was sealed.
    closing: bool,
    /// Key updates sent.
    updates: u64,
    shared: Arc<Shared>,
}

pub(super) fn split<R, W>(
    established: Established,
    rd: R,
    wr: W,
    records_per_key: u64,
) -> Result<(TlsReader<R>, TlsWriter<W>), RecordError> {
    let Established {
        secrets,
        kernel,
        plaintext,
        ciphertext,
    } = established;
    let limit = kernel.confidentiality_limit()?;
    let (tx_seq, tx) = secrets.tx;
    let (rx_seq, rx) = secrets.rx;
    let shared = Arc::new(Shared {
        kernel: Mutex::new(kernel),
        update_requested: AtomicBool::new(false),
    });
    // What arrived with the handshake goes first: rustls' plaintext, then our records.
    let (p, c) = (plaintext.len(), ciphertext.len());
    let mut buf = vec![0u8; READ_BUFFER.max(p + c + MAX_RECORD)];
    buf[..p].copy_from_slice(&plaintext);
    buf[p..p + c].copy_from_slice(&ciphertext);
    let reader = TlsReader {
        tcp: rd,
        buf,
        plain: 0..p,
        pos: p,
        filled: p + c,
        rx: Receiving {
            key: RecordKey::new(rx_seq, rx)?,
            opened: 0,
            limit,
            messages: Vec::new(),
            closed: false,
            updates: 0,
            shared: shared.clone(),
        },
    };
    let writer = TlsWriter {
        tcp: wr,
        out: Vec::with_capacity(WRITE_BATCH + MAX_RECORD),
        sent: 0,
        key: RecordKey::new(tx_seq, tx)?,
        sealed: 0,
        records_per_key: records_per_key.min(limit).max(2),
        closing: false,
        updates: 0,
        shared,
    };
    Ok((reader, writer))
}

impl<R> TlsReader<R> {
    /// Key updates received from the peer so far.
    pub fn key_updates(&self) -> u64 {
        self.rx.updates
    }

    /// Opens the next complete record in our buffer, if one was received. `Ok(false)`: more
    /// bytes needed.
    fn open_next(&mut self) -> Result<bool, RecordError> {
        let Some((header, len)) = next_record(&self.buf[self.pos..self.filled])? else {
            return Ok(false);
        };
        let record = self.pos..self.pos + HEADER + len;
        // The content moves over the header, to the record's start.
        let content = self
            .rx
            .open(header, &mut self.buf[record.clone()], HEADER)?;
        if let Some(n) = content {
            self.plain = record.start..record.start + n;
        }
        self.pos = record.end;
        Ok(true)
    }
}

/// The header and body length of the record at the start of `received`, once all of it is
/// there.
fn next_record(received: &[u8]) -> Result<Option<([u8; HEADER], usize)>, RecordError> {
    let Some(header) = received.first_chunk::<HEADER>() else {
        return Ok(None);
    };
    let len = record::check_header(*header)?;
    Ok((received.len() >= HEADER + len).then_some((*header, len)))
}

impl Receiving {
    /// Opens the record `header` announced, whose body is `in_out[src..]`, moving its content
    /// to the start of `in_out`. Data: `Some(length)`; a handshake message or an alert is
    /// handled here (`None`).
    fn open(
        &mut self,
        header: [u8; HEADER],
        in_out: &mut [u8],
        src: usize,
    ) -> Result<Option<usize>, RecordError> {
        self.opened += 1;
        if self.opened > self.limit {
            return Err(RecordError::KeyLimitExceeded);
        }
        let (content_type, n) = self.key.open(header, in_out, src)?;
        match content_type {
            APPLICATION_DATA => return Ok(Some(n)),
            HANDSHAKE if n > 0 => {
                if self.messages.len() + n > MESSAGES_LIMIT {
                    return Err(RecordError::MalformedHandshake("message too long"));
                }
                self.messages.extend_from_slice(&in_out[..n]);
                self.handle_messages()?;
            }
            ALERT if n == 2 => match in_out[1] {
                CLOSE_NOTIFY => self.closed = true,
                description => return Err(RecordError::Alert(description)),
            },
            other => return Err(RecordError::UnexpectedInnerType(other)),
        }
        Ok(None)
    }

    /// Handles every complete post-handshake message received.
    fn handle_messages(&mut self) -> Result<(), RecordError> {
        while self.messages.len() >= 4 {
            let m = &self.messages;
            let len = u32::from_be_bytes([0, m[1], m[2], m[3]]) as usize;
            if 4 + len > MESSAGES_LIMIT {
                return Err(RecordError::MalformedHandshake("message too long"));
            }
            if m.len() < 4 + len {
                break;
            }
            let body = &m[4..4 + len];
            match m[0] {
                KEY_UPDATE => {
                    let [request] = body else {
                        return Err(RecordError::MalformedHandshake("KeyUpdate length"));
                    };
                    if *request > 1 {
                        return Err(RecordError::MalformedHandshake("KeyUpdate request"));
                    }
                    // Handshake messages may not span a key change.
                    if m.len() != 5 {
                        return Err(RecordError::MalformedHandshake(
                            "data after a KeyUpdate in its record",
                        ));
                    }
                    self.key = self.shared.kernel.lock().update_rx()?;
                    self.opened = 0;
                    self.updates += 1;
                    if *request == 1 {
                        self.shared.update_requested.store(true, Ordering::Release);
                    }
                }
                NEW_SESSION_TICKET => self.shared.kernel.lock().new_session_ticket(body)?,
                other => return Err(RecordError::UnexpectedHandshake(other)),
            }
            self.messages.drain(..4 + len);
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> TlsReader<R> {
    /// Reads more bytes from the socket into our buffer (called with no plaintext left to
    /// deliver).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
        } else if self.buf.len() - self.filled < MAX_RECORD {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
        let mut read = ReadBuf::new(&mut self.buf[self.filled..]);
        ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        if n == 0 {
            return Poll::Ready(Err(truncated()));
        }
        self.filled += n;
        Poll::Ready(Ok(()))
    }

    /// Reads records straight into `out` and decrypts them there, each content moved over
    /// the headers and tags before it (called with our buffer empty). A record cut at the end
    /// of the read moves to our buffer.
    fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let start = out.filled().len();
        ready!(Pin::new(&mut self.tcp).poll_read(cx, out))?;
        let received = &mut out.filled_mut()[start..];
        if received.is_empty() {
            return Poll::Ready(Err(truncated()));
        }
        // Records are opened at `read`; their contents are gathered at `written`.
        let (mut read, mut written) = (0, 0);
        while !self.rx.closed {
            let Some((header, len)) = next_record(&received[read..])? else {
                break;
            };
            let end = read + HEADER + len;
            let src = read + HEADER - written;
            if let Some(n) = self.rx.open(header, &mut received[written..end], src)? {
                written += n;
            }
            read = end;
        }
        // Nothing after close_notify counts.
        let rest = if self.rx.closed {
            0
        } else {
            received.len() - read
        };
        self.buf[..rest].copy_from_slice(&received[read..read + rest]);
        self.pos = 0;
        self.filled = rest;
        out.set_filled(start + written);
        Poll::Ready(Ok(()))
    }
}

/// The error of a stream that ended inside a record or without close_notify.
fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer closed the connection without close_notify",
    )
}

impl<R: AsyncRead + Unpin> AsyncRead for TlsReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.plain.is_empty() {
                let n = this.plain.len().min(out.remaining());
                out.put_slice(&this.buf[this.plain.start..this.plain.start + n]);
                this.plain.start += n;
                return Poll::Ready(Ok(()));
            }
            if this.rx.closed {
                return Poll::Ready(Ok(()));
            }
            if this.pos == this.filled && out.remaining() >= DIRECT_READ {
                let before = out.filled().len();
                ready!(this.poll_read_direct(cx, out))?;
                if out.filled().len() > before {
                    return Poll::Ready(Ok(()));
                }
            } else if !this.open_next()? {
                ready!(this.poll_fill(cx))?;
            }
        }
    }
}

impl<W> TlsWriter<W> {
    /// Key updates sent so far.
    pub fn key_updates(&self) -> u64 {
        self.updates
    }

    /// Seals one record (updating the key first when due).
    fn seal(&mut self, content_type: u8, content: &[u8]) -> Result<(), RecordError> {
        let requested = self.shared.update_requested.load(Ordering::Relaxed)
            && self.shared.update_requested.swap(false, Ordering::Acquire);
        if requested || self.sealed + 1 >= self.records_per_key {
            self.update_key(false)?;
        }
        self.key.seal(content_type, content, &mut self.out)?;
        self.sealed += 1;
        Ok(())
    }

    /// Sends a KeyUpdate (asking the peer to update its key too when `request`) and switches
    /// to the next key.
    fn update_key(&mut self, request: bool) -> Result<(), RecordError> {
        let message = [KEY_UPDATE, 0, 0, 1, u8::from(request)];
        self.key.seal(HANDSHAKE, &message, &mut self.out)?;
        self.key = self.shared.kernel.lock().update_tx()?;
        self.sealed = 0;
        self.updates += 1;
        Ok(())
    }
}

#[cfg(test)]
impl<W> TlsWriter<W> {
    /// The transport (tests read the sealed records from it).
    pub(super) fn transport(&mut self) -> &mut W {
        &mut self.tcp
    }

    /// Seals an arbitrary record (tests build hostile streams with it).
    pub(super) fn seal_raw(&mut self, content_type: u8, content: &[u8]) {
        self.key
            .seal(content_type, content, &mut self.out)
            .expect("sealed");
    }

    /// Sends a KeyUpdate that asks the peer to update its key too.
    pub(super) fn request_key_update(&mut self) {
        self.update_key(true).expect("updated");
    }
}

impl<W: AsyncWrite + Unpin> TlsWriter<W> {
    /// Writes the sealed records to the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for TlsWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() >= WRITE_BATCH {
            ready!(this.poll_drain(cx))?;
        }
        let room = WRITE_BATCH
            .saturating_sub(this.out.len())
            .max(MAX_PLAINTEXT);
        let take = data.len().min(room);
        for content in data[..take].chunks(MAX_PLAINTEXT) {
            this.seal(APPLICATION_DATA, content)?;
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            // close_notify: alert level warning (1), description 0.
            this.seal(ALERT, &[1, CLOSE_NOTIFY])?;
            this.closing = true;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
