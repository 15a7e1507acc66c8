//! Length-delimited frames: a little-endian `u32` byte count, then that many bytes.
//!
//! A frame announcing more than the reader's limit is refused before anything is allocated, so
//! a hostile peer cannot make the reader reserve memory it did not send.

use crate::error::{Error, Result};
use crate::pool::{BufferPool, POOLED_MIN};
use crate::protocol::OutFrame;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Default largest frame a peer accepts (64 MiB). Bulk reads and writes are split below it.
pub const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// Frames whose segments add up to at most this many bytes are copied into one buffer and
/// written at once (one record, one system call); larger segments are written where they are.
const COALESCE_BYTES: usize = 64 << 10;

/// Reads one frame from `reader`. `Ok(None)` is a clean end of stream between frames. The
/// body is read into memory that is not zeroed first; large bodies into a reused buffer of
/// the [`BufferPool`] that returns to it when the last view of the frame is dropped.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: u32,
    peer: &str,
) -> Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io(peer, e)),
    }
    let len = u32::from_le_bytes(len);
    if len > limit {
        return Err(Error::FrameTooLarge {
            peer: peer.to_string(),
            len: len as u64,
            limit,
        });
    }
    let len = len as usize;
    if len >= POOLED_MIN {
        let mut body = BufferPool::global().empty(len);
        read_body(reader, body.vec(), len, peer).await?;
        return Ok(Some(body.freeze()));
    }
    let mut body = BytesMut::with_capacity(len);
    read_body(reader, &mut body, len, peer).await?;
    Ok(Some(body.freeze()))
}

/// Appends the next `len` bytes of `reader` to the empty `body` (whose spare capacity is
/// filled without being zeroed first).
async fn read_body<R: AsyncRead + Unpin, B: BufMut + AsRef<[u8]>>(
    reader: &mut R,
    body: &mut B,
    len: usize,
    peer: &str,
) -> Result<()> {
    while body.as_ref().len() < len {
        let mut rest = (&mut *reader).take((len - body.as_ref().len()) as u64);
        let n = rest.read_buf(body).await.map_err(|e| Error::io(peer, e))?;
        if n == 0 {
            return Err(Error::io(
                peer,
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
    }
    Ok(())
}

/// Writes an encoded session message and flushes: small frames as one buffer, large ones as
/// the head followed by each segment straight from where it lies.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &OutFrame,
    peer: &str,
) -> Result<()> {
    write_message_with_tail(writer, frame, &[], peer).await
}

/// [`write_message`] of a frame encoded by
/// [`crate::protocol::encode_message_with_tail`]: `tail` is written after its segments.
pub async fn write_message_with_tail<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &OutFrame,
    tail: &[u8],
    peer: &str,
) -> Result<()> {
    let io = |e| Error::io(peer, e);
    let data = frame.segments.iter().map(Bytes::len).sum::<usize>() + tail.len();
    if data <= COALESCE_BYTES {
        let mut all = Vec::with_capacity(frame.head.len() + data);
        all.extend_from_slice(&frame.head);
        for s in &frame.segments {
            all.extend_from_slice(s);
        }
        all.extend_from_slice(tail);
        writer.write_all(&all).await.map_err(io)?;
    } else {
        writer.write_all(&frame.head).await.map_err(io)?;
        for s in &frame.segments {
            writer.write_all(s).await.map_err(io)?;
        }
        writer.write_all(tail).await.map_err(io)?;
    }
    writer.flush().await.map_err(io)
}

/// Writes `body` as one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
    peer: &str,
) -> Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| Error::FrameTooLarge {
        peer: peer.to_string(),
        len: body.len() as u64,
        limit: u32::MAX,
    })?;
    writer
        .write_all(&len.to_le_bytes())
        .await
        .map_err(|e| Error::io(peer, e))?;
    writer
        .write_all(body)
        .await
        .map_err(|e| Error::io(peer, e))?;
    writer.flush().await.map_err(|e| Error::io(peer, e))
}
