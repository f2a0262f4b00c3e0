//! The hashes the workload controllers name things with: FNV-1a (32 bit) and Kubernetes'
//! "safe" encoding of a number (no vowels, no look-alike characters), as
//! `pod-template-hash` values are made.

/// FNV-1a, 32 bit.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `k8s.io/apimachinery/pkg/util/rand.SafeEncodeString` of the decimal form of `n`.
pub fn safe_encode(n: u32) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string()
        .bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_uses_no_vowels() {
        let encoded = safe_encode(1_234_567_890);
        assert_eq!(encoded.len(), 10);
        assert!(!encoded.contains(['a', 'e', 'i', 'o', 'u', '0', '1', '3']));
    }
}
