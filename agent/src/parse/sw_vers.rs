//! The macOS version from `sw_vers`: either `sw_vers -productVersion`
//! (one line, `14.5`) or plain `sw_vers`, whose output is (tabs, shown
//! here as spaces, between key and value)
//!
//! ```text
//! ProductName:    macOS
//! ProductVersion: 14.5
//! BuildVersion:   23F79
//! ```
//!
//! The value goes into every report, so it is checked to be a version
//! (1–3 dot-separated numbers) rather than passed through.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwVersError {
    #[error(
        "sw_vers printed no product version (got {output:?}); is /usr/bin/sw_vers the real tool?"
    )]
    Missing { output: String },
    #[error("sw_vers product version {value:?} is not of the form 14.5 or 15.0.1")]
    Malformed { value: String },
}

/// The product version, e.g. `"14.5"`.
pub fn parse_product_version(output: &str) -> Result<String, SwVersError> {
    let value = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("ProductVersion:"))
        .or_else(|| output.lines().map(str::trim).find(|l| !l.is_empty()))
        .map(str::trim)
        .ok_or_else(|| SwVersError::Missing {
            output: output.chars().take(80).collect(),
        })?;
    let parts: Vec<&str> = value.split('.').collect();
    let ok = (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(value.to_string())
    } else {
        Err(SwVersError::Malformed {
            value: value.chars().take(80).collect(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn product_version_forms() {
        assert_eq!(parse_product_version("14.5\n").unwrap(), "14.5");
        assert_eq!(parse_product_version("15.0.1").unwrap(), "15.0.1");
        assert_eq!(
            parse_product_version(
                "ProductName:\t\tmacOS\nProductVersion:\t\t13.6.7\nBuildVersion:\t\t22G720\n"
            )
            .unwrap(),
            "13.6.7"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            parse_product_version(""),
            Err(SwVersError::Missing { .. })
        ));
        assert!(matches!(
            parse_product_version("\n \n"),
            Err(SwVersError::Missing { .. })
        ));
        for bad in [
            "14.5 beta",
            "14..5",
            "1.2.3.4",
            "macOS",
            "14.5; rm -rf",
            "123456",
        ] {
            assert!(
                matches!(
                    parse_product_version(bad),
                    Err(SwVersError::Malformed { .. })
                ),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,100}") {
            let _ = parse_product_version(&s);
        }
    }
}
