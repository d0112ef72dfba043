//! The JWT check on hostile `Authorization` headers: never a panic, never a pass without the
//! secret, and a genuine token spoiled by any one byte never passes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_layers::JwtSecret;

const SECRET: [u8; 32] = [0x5a; 32];

fuzz_target!(|data: &[u8]| {
    let secret = JwtSecret::from_bytes(SECRET);
    let now = 1_700_000_000;
    assert!(
        secret.validate_header(Some(data), now).is_err(),
        "a forged header passed"
    );

    // A genuine token, one byte changed at a position and to a value the input picks.
    let [a, b, c, rest @ ..] = data else { return };
    let token = secret.token(now).expect("signs");
    let header = format!("Bearer {token}");
    assert!(secret.validate_header(Some(header.as_bytes()), now).is_ok());
    let mut spoiled = header.into_bytes();
    let at = (usize::from(*a) << 8 | usize::from(*b)) % spoiled.len();
    let to = c.wrapping_add(1);
    if spoiled[at] == to || at < "Bearer ".len() {
        return;
    }
    spoiled[at] = to;
    spoiled.extend_from_slice(&rest[..rest.len().min(4)]);
    assert!(
        secret.validate_header(Some(&spoiled), now).is_err(),
        "a spoiled token passed: {}",
        String::from_utf8_lossy(&spoiled)
    );
});
