//! Durations written the way Istio and Go write them: `5s`, `1.5s`, `100ms`, `1m30s`.

/// Parses a Go/Istio duration string into whole milliseconds, rounding any
/// sub-millisecond remainder up so that a positive duration never becomes zero.
pub fn parse_millis(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text == "0" {
        return Ok(0);
    }
    let mut rest = text;
    // u64 nanoseconds reach 584 years: plenty, and no 128-bit arithmetic in Wasm.
    let mut total_nanos: u64 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` has a number without a unit (ns, us, ms, s, m, h)"))?;
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per_unit = unit_nanos(unit).ok_or_else(|| {
            format!("`{text}` has unknown unit `{unit}` (use ns, us, ms, s, m, h)")
        })?;
        let part = scaled_nanos(number, nanos_per_unit)
            .ok_or_else(|| format!("`{text}` has a malformed number `{number}`"))?;
        total_nanos = total_nanos
            .checked_add(part)
            .ok_or_else(|| format!("`{text}` is too long"))?;
        rest = next;
    }
    Ok(total_nanos.div_ceil(1_000_000))
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// `number` is `digits[.digits]`; returns number × unit in nanoseconds.
fn scaled_nanos(number: &str, unit: u64) -> Option<u64> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let whole_value: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut result = whole_value.checked_mul(unit)?;
    // Digits past nanosecond precision cannot change the result.
    let mut scale = unit;
    for digit in fraction.chars().take(20) {
        scale /= 10;
        let value = u64::from(digit.to_digit(10)?);
        result = result.checked_add(value.checked_mul(scale)?)?;
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::parse_millis;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_istio_and_go_forms() {
        assert_eq!(parse_millis("5s"), Ok(5_000));
        assert_eq!(parse_millis("1.5s"), Ok(1_500));
        assert_eq!(parse_millis("100ms"), Ok(100));
        assert_eq!(parse_millis("1m30s"), Ok(90_000));
        assert_eq!(parse_millis("1h"), Ok(3_600_000));
        assert_eq!(parse_millis(".5s"), Ok(500));
        assert_eq!(parse_millis("1us"), Ok(1));
        assert_eq!(parse_millis("0"), Ok(0));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_malformed_durations() {
        for bad in [
            "",
            "5",
            "5x",
            "s",
            "1..5s",
            "-1s",
            "1.2.3s",
            "99999999999999999999999h",
        ] {
            assert!(parse_millis(bad).is_err(), "{bad} should be rejected");
        }
    }
}
