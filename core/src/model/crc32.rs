//! CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the checksum of zlib and PNG, four
//! bits at a time with a 16-entry table built at compile time: 64 bytes of flash instead of
//! the 1 KiB of a byte table, for a checksum read once per model at start-up.

/// The CRC register's update for each 4-bit value shifted out.
const TABLE: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 4 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_update(0, bytes)
}

/// The CRC-32 of some bytes followed by `bytes`, from `crc`, the CRC-32 of the bytes before
/// (0 for none): a checksum computed a piece at a time.
pub fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!crc, |c, &b| {
        let c = c ^ b as u32;
        let c = TABLE[(c & 0xF) as usize] ^ (c >> 4);
        TABLE[(c & 0xF) as usize] ^ (c >> 4)
    })
}

#[cfg(test)]
mod tests {
    use super::{crc32, crc32_update};

    /// The CRC bit by bit, as the polynomial defines it.
    fn crc32_bitwise(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn gives_the_standard_check_value_and_the_bitwise_crc() {
        // The catalogue's check value of CRC-32/ISO-HDLC (zlib's) for "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let mut x = 0x1234_5678u32;
        let bytes: [u8; 1000] = core::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        });
        for len in [1, 2, 3, 17, 256, 1000] {
            assert_eq!(
                crc32(&bytes[..len]),
                crc32_bitwise(&bytes[..len]),
                "{len} bytes"
            );
        }
        // Piece by piece, split anywhere, it is the CRC of the whole.
        for split in [0, 1, 3, 500, 999, 1000] {
            let (a, b) = bytes.split_at(split);
            assert_eq!(crc32_update(crc32(a), b), crc32(&bytes), "split at {split}");
        }
    }
}
