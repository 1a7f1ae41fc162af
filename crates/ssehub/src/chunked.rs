//! HTTP/1.1 chunked framing: what the lean server puts around every frame
//! it writes — itself, or through the broker's fan-out writer, which frames
//! with [`FRAMING`] (once per publish, for every lent socket).

use bytes::{Bytes, BytesMut};

use crate::broker::Framing;

/// Each event one HTTP/1.1 chunk: the framing of a socket the lean server
/// lends to the broker.
pub(crate) static FRAMING: Framing = Framing {
    frame: chunk,
    event: unchunk,
};

/// `data` framed as one HTTP/1.1 chunk: size line, data, CRLF.
pub(crate) fn chunk(data: &[u8]) -> Bytes {
    let mut size_line = [0u8; 18];
    let size_line = self::size_line(data.len(), &mut size_line);
    let mut chunk = BytesMut::with_capacity(size_line.len() + data.len() + 2);
    chunk.extend_from_slice(size_line);
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(b"\r\n");
    chunk.freeze()
}

/// The data inside a chunk made by [`chunk`].
fn unchunk(chunk: &[u8]) -> &[u8] {
    let start = chunk
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(0, |p| p + 2);
    &chunk[start..chunk.len().saturating_sub(2).max(start)]
}

/// `len` in lowercase hex followed by CRLF: an HTTP/1.1 chunk-size line.
pub(crate) fn size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut count = 0;
    loop {
        digits[count] = HEX[n & 0xf];
        count += 1;
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    for i in 0..count {
        buf[i] = digits[count - 1 - i];
    }
    buf[count] = b'\r';
    buf[count + 1] = b'\n';
    &buf[..count + 2]
}

#[cfg(test)]
mod tests {
    use super::{chunk, size_line, unchunk};

    #[test]
    fn a_chunk_is_size_line_data_crlf_and_unchunks_back() {
        assert_eq!(&chunk(b"data: x\n\n")[..], b"9\r\ndata: x\n\n\r\n");
        assert_eq!(unchunk(&chunk(b"data: x\n\n")), b"data: x\n\n");
        let big = vec![b'a'; 300];
        let framed = chunk(&big);
        assert!(framed.starts_with(b"12c\r\n"));
        assert_eq!(unchunk(&framed), &big[..]);
        assert_eq!(unchunk(&chunk(b"")), b"");
    }

    #[test]
    fn chunk_size_lines_are_lowercase_hex() {
        let mut buf = [0u8; 18];
        assert_eq!(size_line(0, &mut buf), b"0\r\n");
        assert_eq!(size_line(255, &mut buf), b"ff\r\n");
        assert_eq!(size_line(0x1_0000, &mut buf), b"10000\r\n");
        assert_eq!(size_line(usize::MAX, &mut buf), b"ffffffffffffffff\r\n");
    }
}
