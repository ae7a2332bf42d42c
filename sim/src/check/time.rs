//! How checkers and reports print a time given in nanoseconds since the run began.

/// `1.250ms`, `3.000s`, `800ns`: three decimals in the largest unit that keeps the number at
/// least 1, so that times in one message compare at a glance.
pub(crate) fn format_time(nanos: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs")];
    for (scale, unit) in UNITS {
        if nanos >= scale {
            return format!("{:.3}{unit}", nanos as f64 / scale as f64);
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn picks_the_largest_unit_that_keeps_the_number_at_least_one() {
        assert_eq!(format_time(0), "0ns");
        assert_eq!(format_time(999), "999ns");
        assert_eq!(format_time(1_250_000), "1.250ms");
        assert_eq!(format_time(3_000_000_000), "3.000s");
        assert_eq!(format_time(12_500), "12.500µs");
    }
}
