//! Checks shared by every daemon's config, so "every problem reported at once" reads the same
//! in all of them.

/// The longest duration any setting may name. Durations come from TOML and from request
/// bodies; bounding them keeps `Duration` arithmetic from overflowing.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Records a problem unless `value` is a finite number of seconds in range: above zero (or
/// zero too, when `allow_zero`), and at most `max`.
pub fn check_seconds(
    problems: &mut Vec<String>,
    name: &str,
    value: f64,
    allow_zero: bool,
    max: f64,
) {
    let low_ok = if allow_zero {
        value >= 0.0
    } else {
        value > 0.0
    };
    if !(value.is_finite() && low_ok && value <= max) {
        let low = if allow_zero { "0" } else { "more than 0" };
        problems.push(format!(
            "{name} = {value} must be {low} and at most {max} seconds"
        ));
    }
}

/// [`check_seconds`] for several `(name, value, allow_zero)` fields, each at most
/// [`MAX_SECONDS`].
pub fn check_all_seconds(problems: &mut Vec<String>, fields: &[(&str, f64, bool)]) {
    for (name, value, allow_zero) in fields {
        check_seconds(problems, name, *value, *allow_zero, MAX_SECONDS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let mut problems = Vec::new();
        check_seconds(&mut problems, "a", 1.0, false, 10.0);
        check_seconds(&mut problems, "b", 0.0, true, 10.0);
        assert!(problems.is_empty());
        for value in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300, 11.0] {
            check_seconds(&mut problems, "c", value, false, 10.0);
        }
        assert_eq!(problems.len(), 6);
        assert!(problems[0].contains("c = 0 must be more than 0"));
    }
}
