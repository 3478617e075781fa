//! Exact conversions of Debezium's wire encodings: big-endian two's-complement decimals,
//! decimal text, ISO-8601 timestamps and times. None of them goes through a float.

use arrow_buffer::i256;
use arrow_schema::TimeUnit;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// A big-endian two's-complement integer (Kafka Connect `Decimal` bytes) as an `i256`.
/// `None` when it needs more than 256 bits.
pub fn twos_complement_to_i256(bytes: &[u8]) -> Option<i256> {
    if bytes.is_empty() {
        return Some(i256::ZERO);
    }
    let negative = bytes[0] & 0x80 != 0;
    let fill = if negative { 0xFF } else { 0x00 };
    let significant = if bytes.len() > 32 {
        let (extra, rest) = bytes.split_at(bytes.len() - 32);
        // The dropped bytes must be pure sign extension, and must agree with the kept sign bit.
        if extra.iter().any(|b| *b != fill) || (rest[0] & 0x80 != 0) != negative {
            return None;
        }
        rest
    } else {
        bytes
    };
    let mut buf = [fill; 32];
    buf[32 - significant.len()..].copy_from_slice(significant);
    Some(i256::from_be_bytes(buf))
}

/// The exact decimal text of an unscaled big-endian two's-complement integer with `scale`
/// (Debezium `VariableScaleDecimal`), of any size.
pub fn unscaled_to_decimal_text(bytes: &[u8], scale: i32) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = bytes.to_vec();
    if negative {
        // Two's complement negation: invert and add one.
        for b in magnitude.iter_mut() {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    // Base 10^9 limbs, least significant first.
    let mut limbs: Vec<u32> = vec![0];
    for &byte in &magnitude {
        let mut carry = u64::from(byte);
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * 256 + carry;
            *limb = (v % 1_000_000_000) as u32;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push((carry % 1_000_000_000) as u32);
            carry /= 1_000_000_000;
        }
    }
    let mut digits = limbs.last().expect("one limb").to_string();
    for limb in limbs.iter().rev().skip(1) {
        digits.push_str(&format!("{limb:09}"));
    }
    let mut out = String::new();
    if negative && digits != "0" {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(&digits);
        if digits != "0" {
            out.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        }
    } else {
        let scale = scale as usize;
        if digits.len() <= scale {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', scale - digits.len()));
            out.push_str(&digits);
        } else {
            let (int, frac) = digits.split_at(digits.len() - scale);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
    }
    out
}

/// Parses decimal text (`-12.50`, `1.0E28`, `7`) into an unscaled integer at `scale`.
/// Digits beyond the scale must be zeros: nothing is rounded away silently.
pub fn parse_decimal_text(text: &str, scale: i8) -> Result<i256, String> {
    let bad = || format!("`{text}` is not a decimal number");
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    let digits = int.bytes().chain(frac.bytes());
    // Value = digits * 10^(exponent - frac.len()); we want digits * 10^(exponent - frac.len() + scale).
    let shift = exponent - frac.len() as i32 + i32::from(scale);
    let ten = i256::from_i128(10);
    let overflow = || format!("`{text}` does not fit a 256-bit decimal");
    let mut value = i256::ZERO;
    let total = int.len() + frac.len();
    for (i, d) in digits.enumerate() {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        let d = i256::from_i128(i128::from(d - b'0'));
        // Digits past the target scale (negative shift) must be zero.
        let keep = shift >= 0 || (i as i32) < total as i32 + shift;
        if keep {
            value = value
                .checked_mul(ten)
                .and_then(|v| v.checked_add(d))
                .ok_or_else(overflow)?;
        } else if d != i256::ZERO {
            return Err(format!(
                "`{text}` has more fractional digits than the column's scale {scale}"
            ));
        }
    }
    for _ in 0..shift.max(0) {
        value = value.checked_mul(ten).ok_or_else(overflow)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

fn to_unit(nanos: i128, unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => nanos.div_euclid(1_000_000_000),
        TimeUnit::Millisecond => nanos.div_euclid(1_000_000),
        TimeUnit::Microsecond => nanos.div_euclid(1_000),
        TimeUnit::Nanosecond => nanos,
    }
}

/// An ISO-8601 timestamp (`2024-02-29T12:34:56.123456Z`, with an offset, or without one = UTC)
/// in `unit` since the epoch.
pub fn parse_timestamp(s: &str, unit: TimeUnit) -> Result<i64, String> {
    let (secs, nanos) = match DateTime::parse_from_rfc3339(s) {
        Ok(dt) => (dt.timestamp(), dt.timestamp_subsec_nanos()),
        Err(_) => {
            let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
                .map_err(|e| format!("`{s}` is not an ISO-8601 timestamp: {e}"))?;
            let utc = naive.and_utc();
            (utc.timestamp(), utc.timestamp_subsec_nanos())
        }
    };
    let total = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    i64::try_from(to_unit(total, unit)).map_err(|_| format!("`{s}` is out of range"))
}

/// An ISO-8601 time of day, optionally with `Z` or an offset (then converted to UTC), in `unit`
/// since midnight.
pub fn parse_time(s: &str, unit: TimeUnit) -> Result<i64, String> {
    let bad = |e: String| format!("`{s}` is not an ISO-8601 time: {e}");
    let (time, offset_secs) = if let Some(t) = s.strip_suffix('Z') {
        (t, 0i64)
    } else if let Some(i) = s.rfind(['+', '-']).filter(|&i| i >= 8) {
        let (t, off) = s.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        let h: i64 = h.parse().map_err(|_| bad("bad offset".into()))?;
        let m: i64 = m.parse().map_err(|_| bad("bad offset".into()))?;
        (t, sign * (h * 3600 + m * 60))
    } else {
        (s, 0)
    };
    let t = NaiveTime::parse_from_str(time, "%H:%M:%S%.f").map_err(|e| bad(e.to_string()))?;
    let nanos =
        i64::from(t.num_seconds_from_midnight()) * 1_000_000_000 + i64::from(t.nanosecond());
    let utc = (nanos - offset_secs * 1_000_000_000).rem_euclid(NANOS_PER_DAY);
    Ok(to_unit(i128::from(utc), unit) as i64)
}

/// An ISO date (`YYYY-MM-DD`) as days since the epoch.
pub fn parse_date(s: &str) -> Result<i32, String> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("`{s}`: {e}"))?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    i32::try_from((d - epoch).num_days()).map_err(|_| format!("`{s}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twos_complement() {
        assert_eq!(
            twos_complement_to_i256(&[0xFD, 0x44]).unwrap(),
            i256::from_i128(-700)
        );
        assert_eq!(twos_complement_to_i256(&[0x00]).unwrap(), i256::ZERO);
        assert_eq!(
            twos_complement_to_i256(&[0xFF]).unwrap(),
            i256::from_i128(-1)
        );
        let mut wide = vec![0u8; 33];
        wide[1] = 0x80;
        assert!(twos_complement_to_i256(&wide).is_none());
    }

    #[test]
    fn variable_scale_text() {
        assert_eq!(unscaled_to_decimal_text(&[0x04, 0xCB, 0x2F], 5), "3.14159");
        assert_eq!(
            unscaled_to_decimal_text(&[0xFF], 20),
            "-0.00000000000000000001"
        );
        assert_eq!(unscaled_to_decimal_text(&[0x00], 0), "0");
        assert_eq!(unscaled_to_decimal_text(&[0x0C], -2), "1200");
    }

    #[test]
    fn decimal_text() {
        assert_eq!(
            parse_decimal_text("-12.5", 2).unwrap(),
            i256::from_i128(-1250)
        );
        assert_eq!(
            parse_decimal_text("1.0E28", 10).unwrap(),
            i256::from_i128(10i128.pow(38))
        );
        assert_eq!(parse_decimal_text("7.000", 1).unwrap(), i256::from_i128(70));
        assert!(parse_decimal_text("7.05", 1).is_err());
        assert!(parse_decimal_text("abc", 1).is_err());
        assert!(parse_decimal_text("-", 1).is_err());
    }

    #[test]
    fn timestamps_and_times() {
        assert_eq!(
            parse_timestamp("1969-12-31T23:59:59.999999Z", TimeUnit::Microsecond).unwrap(),
            -1
        );
        assert_eq!(
            parse_timestamp("2018-06-20T06:37:03-07:00", TimeUnit::Second).unwrap(),
            1529501823
        );
        assert_eq!(
            parse_time("12:00:00.5Z", TimeUnit::Millisecond).unwrap(),
            43_200_500
        );
        assert_eq!(
            parse_time("01:00:00+02:00", TimeUnit::Second).unwrap(),
            82_800
        );
        assert_eq!(parse_date("1970-01-02").unwrap(), 1);
    }
}
