//! TLS 1.3 record protection (RFC 8446 §5.2-5.4) with `ring::aead`.
//!
//! Every protected record is `0x17 0x03 0x03 len` followed by `len` bytes of AEAD output: the
//! encrypted inner plaintext (content || content type || zero padding) and the 16-byte tag.
//! The header is the additional data; the nonce is the traffic IV XOR the record's 64-bit
//! big-endian sequence number, which starts at the number rustls hands over and restarts at 0
//! with every key update.

use super::RecordError;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use rustls::ConnectionTrafficSecrets;

/// The outer content type of every TLS 1.3 protected record.
pub(crate) const APPLICATION_DATA: u8 = 0x17;
/// Inner content type: a post-handshake handshake message (KeyUpdate, NewSessionTicket).
pub(crate) const HANDSHAKE: u8 = 0x16;
/// Inner content type: an alert.
pub(crate) const ALERT: u8 = 0x15;

/// Record header bytes.
pub(crate) const HEADER: usize = 5;
/// AEAD tag bytes of every supported suite.
pub(crate) const TAG: usize = 16;
/// Most plaintext bytes a record carries (2^14).
pub(crate) const MAX_PLAINTEXT: usize = 1 << 14;
/// Most bytes after the header a peer may send in one record (RFC 8446 §5.2: 2^14 + 256).
pub(crate) const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// Bytes a record adds to its content when we seal it (header, content type, tag).
pub(crate) const OVERHEAD: usize = HEADER + 1 + TAG;

/// One direction's traffic key, IV and sequence number.
pub(crate) struct RecordKey {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    seq: u64,
}

impl RecordKey {
    /// The key of `secrets`, the next record being number `seq`.
    pub(crate) fn new(seq: u64, secrets: ConnectionTrafficSecrets) -> Result<Self, RecordError> {
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(RecordError::UnsupportedSuite),
        };
        let key = UnboundKey::new(algorithm, key.as_ref()).map_err(|_| RecordError::BadKey)?;
        let iv: [u8; NONCE_LEN] = iv.as_ref().try_into().map_err(|_| RecordError::BadKey)?;
        Ok(RecordKey {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// The nonce of the next record; advances the sequence number.
    fn next_nonce(&mut self) -> Result<Nonce, RecordError> {
        let mut nonce = self.iv;
        for (n, s) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *n ^= s;
        }
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or(RecordError::SequenceExhausted)?;
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    /// Appends one protected record carrying `content` of inner type `content_type` to `out`
    /// (the caller keeps `content` within [`MAX_PLAINTEXT`] bytes; a peer refuses more).
    pub(crate) fn seal(
        &mut self,
        content_type: u8,
        content: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let len = (content.len() + 1 + TAG) as u16;
        let [hi, lo] = len.to_be_bytes();
        let header = [APPLICATION_DATA, 0x03, 0x03, hi, lo];
        let start = out.len();
        out.reserve(content.len() + OVERHEAD);
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        out.push(content_type);
        let nonce = self.next_nonce()?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), &mut out[start + HEADER..])
            .map_err(|_| RecordError::BadKey)?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts the record whose `header` was read and whose body (ciphertext and tag) is
    /// `in_out[src..]`, moving the plaintext to the start of `in_out` (`src` 0: in place).
    /// Returns the inner content type and the content's length (the content is
    /// `in_out[..len]`).
    pub(crate) fn open(
        &mut self,
        header: [u8; HEADER],
        in_out: &mut [u8],
        src: usize,
    ) -> Result<(u8, usize), RecordError> {
        let nonce = self.next_nonce()?;
        let plain = self
            .key
            .open_within(nonce, Aad::from(header), in_out, src..)
            .map_err(|_| RecordError::BadRecordMac)?;
        // The inner plaintext ends with the content type, then zero padding.
        let end = plain
            .iter()
            .rposition(|&b| b != 0)
            .ok_or(RecordError::NoContentType)?;
        if end > MAX_PLAINTEXT {
            return Err(RecordError::RecordOverflow { len: end });
        }
        Ok((plain[end], end))
    }
}

/// Checks a record header: the outer type must be application data (every TLS 1.3 record
/// after the handshake is protected) and the length within bounds. Returns the body length.
pub(crate) fn check_header(header: [u8; HEADER]) -> Result<usize, RecordError> {
    if header[0] != APPLICATION_DATA {
        return Err(RecordError::UnexpectedContentType(header[0]));
    }
    // legacy_record_version is ignored for all purposes (RFC 8446 §5.1).
    let len = u16::from_be_bytes([header[3], header[4]]) as usize;
    if len > MAX_CIPHERTEXT {
        return Err(RecordError::RecordOverflow { len });
    }
    if len < 1 + TAG {
        return Err(RecordError::BadRecordMac);
    }
    Ok(len)
}
