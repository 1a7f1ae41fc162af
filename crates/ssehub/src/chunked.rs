//! HTTP/1.1 chunked framing: what the lean server and the broker's
//! fan-out writer put around every frame they write.

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
    use super::size_line;

    #[test]
    fn chunk_size_lines_are_lowercase_hex() {
        let mut buf = [0u8; 18];
        assert_eq!(size_line(0, &mut buf), b"0\r\n");
        assert_eq!(size_line(255, &mut buf), b"ff\r\n");
        assert_eq!(size_line(0x1_0000, &mut buf), b"10000\r\n");
        assert_eq!(size_line(usize::MAX, &mut buf), b"ffffffffffffffff\r\n");
    }
}
