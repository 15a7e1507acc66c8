//! Length-delimited frames: a little-endian `u32` byte count, then that many bytes.
//!
//! A frame announcing more than the reader's limit is refused before anything is allocated, so
//! a hostile peer cannot make the reader reserve memory it did not send.

use crate::error::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Default largest frame a peer accepts (64 MiB). Bulk reads and writes are split below it.
pub const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// Reads one frame from `reader`. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: u32,
    peer: &str,
) -> Result<Option<Vec<u8>>> {
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
    let mut body = vec![0u8; len as usize];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| Error::io(peer, e))?;
    Ok(Some(body))
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
