//! The `grpc-timeout` header: at most 8 ASCII digits followed by a unit (H, M, S, m, u, n).

use std::time::Duration;

const MAX_VALUE: u128 = 99_999_999;

/// Encodes `timeout` with the finest unit whose value fits in 8 digits, rounding up.
pub(crate) fn encode(timeout: Duration) -> String {
    let nanos = timeout.as_nanos();
    if nanos == 0 {
        return "0n".to_owned();
    }
    const UNITS: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (size, unit) in UNITS {
        let value = nanos.div_ceil(size);
        if value <= MAX_VALUE {
            return format!("{value}{unit}");
        }
    }
    format!("{MAX_VALUE}H")
}

/// Decodes a `grpc-timeout` value; `None` if malformed.
pub(crate) fn decode(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_finest_unit_that_fits() {
        assert_eq!(encode(Duration::ZERO), "0n");
        assert_eq!(encode(Duration::from_nanos(1)), "1n");
        assert_eq!(encode(Duration::from_millis(50)), "50000000n");
        assert_eq!(encode(Duration::from_millis(100)), "100000u");
        assert_eq!(encode(Duration::from_secs(1)), "1000000u");
        assert_eq!(encode(Duration::from_secs(100)), "100000m");
        assert_eq!(encode(Duration::from_secs(200_000)), "200000S");
        assert_eq!(encode(Duration::from_secs(100_000_000)), "1666667M");
        assert_eq!(encode(Duration::from_secs(u64::MAX)), "99999999H");
        // Rounds up so the server never sees a shorter deadline than the client's.
        assert_eq!(encode(Duration::new(1, 1)), "1000001u");
        assert_eq!(encode(Duration::new(100_000, 1)), "100001S");
    }

    #[test]
    fn decodes() {
        assert_eq!(decode(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(decode(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(decode(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(decode(b"4m"), Some(Duration::from_millis(4)));
        assert_eq!(decode(b"5u"), Some(Duration::from_micros(5)));
        assert_eq!(decode(b"99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in [
            &b""[..],
            b"S",
            b"1",
            b"1x",
            b"123456789S",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        for d in [1, 999, 1_000_000, 123_456_789_012] {
            let d = Duration::from_nanos(d);
            assert!(decode(encode(d).as_bytes()).unwrap() >= d);
        }
    }
}
