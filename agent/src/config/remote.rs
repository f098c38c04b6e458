//! The settings that name another party and need more than a type check:
//! `UpdateURL` (where releases are listed), `UpdatePublicKey` (who must
//! have signed them) and `CollectorURL` (where events go). Pure parsers,
//! used by the configuration loader to validate the keys and by the
//! updater and the uploader to use them, so both agree on what is valid.
//! They live here, not with their users, so that the configuration
//! imports nothing of the stages that read it.
//!
//! `UpdateURL` is a GitHub-releases API repository URL,
//! `<api base>/repos/<owner>/<name>`: `https://api.github.com/repos/lenscap/lenscap`
//! by default, `https://github.example.com/api/v3/repos/it/lenscap` for a
//! GitHub Enterprise server, or any mirror serving the same JSON. It must be
//! `https`, except on a loopback host (a local mirror, the tests): the
//! signature protects the binary, but a plain-http listing would let anyone
//! on the path hide updates from the fleet.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use url::{Host, Url};

/// The repository lenscap's own releases come from.
pub const DEFAULT_UPDATE_URL: &str = "https://api.github.com/repos/lenscap/lenscap";

/// A validated `UpdateURL`, split the way the GitHub backend wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateUrl {
    /// Everything before `/repos/`, without a trailing slash
    /// (`https://api.github.com`).
    pub api_base: String,
    pub owner: String,
    pub repo: String,
}

impl UpdateUrl {
    /// Parses `<scheme>://<host>[:port][/prefix]/repos/<owner>/<name>[/]`.
    /// The error says what was expected, for the config message.
    pub fn parse(text: &str) -> Result<UpdateUrl, String> {
        const SHAPE: &str = "a URL like https://api.github.com/repos/<owner>/<name>";
        let url = Url::parse(text).map_err(|e| format!("{SHAPE} ({e})"))?;
        let loopback = match url.host() {
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(format!(
                    "{SHAPE} using https (plain http only to a loopback host)"
                ));
            }
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!("{SHAPE}, without a query, fragment or user name"));
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|seg| !seg.is_empty()).collect())
            .unwrap_or_default();
        let [prefix @ .., "repos", owner, repo] = segments.as_slice() else {
            return Err(format!(
                "{SHAPE} (the path must end in /repos/<owner>/<name>)"
            ));
        };
        let mut api_base = url.clone();
        api_base.set_path(&prefix.join("/"));
        Ok(UpdateUrl {
            api_base: api_base.as_str().trim_end_matches('/').to_string(),
            owner: (*owner).to_string(),
            repo: (*repo).to_string(),
        })
    }
}

impl fmt::Display for UpdateUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/repos/{}/{}", self.api_base, self.owner, self.repo)
    }
}

/// A validated `UpdatePublicKey`: a 32-byte ed25519 verifying key, the
/// public half of the key releases are signed with (`zipsign gen-key`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub self_update::VerifyingKey);

impl PublicKey {
    /// `Ok(None)` for the empty string (the default: no key, no updates).
    /// Accepts the base64 of the 32 raw key bytes (what `zipsign gen-key`
    /// writes to its `.pub` file, base64-encoded: `base64 < release.pub`).
    pub fn parse(text: &str) -> Result<Option<PublicKey>, String> {
        const EXPECTED: &str = "the base64 of a 32-byte ed25519 public key (e.g. `base64 < release.pub`), or an empty string";
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let bytes = BASE64
            .decode(text)
            .map_err(|e| format!("{EXPECTED} ({e})"))?;
        let bytes: self_update::VerifyingKey = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("{EXPECTED} ({} bytes, not 32)", b.len()))?;
        // Not every 32 bytes is a point on the curve; zipsign would refuse
        // the key only at update time, so refuse it when it is configured.
        zipsign_api::VerifyingKey::from_bytes(&bytes).map_err(|e| format!("{EXPECTED} ({e})"))?;
        Ok(Some(PublicKey(bytes)))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", BASE64.encode(self.0))
    }
}

/// A validated `CollectorURL`: `https://…`, or `http://…` to a loopback
/// host only (a collector on the same machine, or tests). No user info,
/// query or fragment; a path prefix (a reverse proxy's) is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorUrl {
    base: String,
    authority: String,
    /// Plain http is allowed, and no proxy is used, only to a loopback host.
    pub(crate) loopback: bool,
}

/// What a `CollectorURL` must look like, for error messages.
pub const EXPECTED_URL: &str = "an https:// URL of the collector (plain http only to a loopback host: 127.0.0.1, ::1, localhost), without user, query or fragment; or an empty string for no upload";

impl CollectorUrl {
    /// `Err` says what was expected.
    pub fn parse(text: &str) -> Result<CollectorUrl, String> {
        let url = Url::parse(text.trim()).map_err(|e| format!("{EXPECTED_URL} ({e})"))?;
        let host = url
            .host()
            .ok_or_else(|| format!("{EXPECTED_URL} (no host)"))?;
        let loopback = match &host {
            Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
            Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
            Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(format!(
                    "{EXPECTED_URL} (plain http would send the host token in clear text)"
                ));
            }
            other => return Err(format!("{EXPECTED_URL} (scheme {other:?})")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{EXPECTED_URL} (it has a user name or password)"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{EXPECTED_URL} (it has a query or fragment)"));
        }
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let base = url.as_str().trim_end_matches('/').to_string();
        Ok(CollectorUrl {
            base,
            authority,
            loopback,
        })
    }

    /// `<base>/api/v1/…`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `host[:port]`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn default_url_is_github_with_the_project_repo() {
        let u = UpdateUrl::parse(DEFAULT_UPDATE_URL).unwrap();
        assert_eq!(u.api_base, "https://api.github.com");
        assert_eq!((u.owner.as_str(), u.repo.as_str()), ("lenscap", "lenscap"));
        assert_eq!(u.to_string(), DEFAULT_UPDATE_URL);
    }

    #[test]
    fn enterprise_prefix_trailing_slash_and_loopback_http() {
        let u = UpdateUrl::parse("https://ghe.example.com/api/v3/repos/it/lenscap/").unwrap();
        assert_eq!(u.api_base, "https://ghe.example.com/api/v3");
        assert_eq!(u.repo, "lenscap");
        for ok in [
            "http://127.0.0.1:8080/repos/o/r",
            "http://[::1]:9/repos/o/r",
            "http://localhost/repos/o/r",
        ] {
            let u = UpdateUrl::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(u.api_base.starts_with("http://"), "{u:?}");
        }
        assert_eq!(
            UpdateUrl::parse("http://127.0.0.1:8080/repos/o/r")
                .unwrap()
                .api_base,
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn bad_urls_say_what_is_expected() {
        for (bad, why) in [
            (
                "http://example.com/repos/o/r",
                "plain http only to a loopback",
            ),
            ("ftp://example.com/repos/o/r", "using https"),
            (
                "https://api.github.com/lenscap/lenscap",
                "must end in /repos",
            ),
            ("https://api.github.com/repos/lenscap", "must end in /repos"),
            ("https://api.github.com/repos/o/r?x=1", "without a query"),
            ("https://user@api.github.com/repos/o/r", "user name"),
            ("api.github.com/repos/o/r", "relative URL"),
            ("", "like https://"),
        ] {
            let err = UpdateUrl::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn public_key_empty_valid_and_invalid() {
        assert_eq!(PublicKey::parse("").unwrap(), None);
        assert_eq!(PublicKey::parse("  ").unwrap(), None);
        let signing = zipsign_api::SigningKey::from_bytes(&[7; 32]);
        let b64 = BASE64.encode(signing.verifying_key().to_bytes());
        let key = PublicKey::parse(&b64).unwrap().unwrap();
        assert_eq!(key.0, signing.verifying_key().to_bytes());
        assert!(format!("{key:?}").contains(&b64));

        let short = PublicKey::parse(&BASE64.encode([1u8; 31])).unwrap_err();
        assert!(short.contains("31 bytes, not 32"), "{short}");
        let junk = PublicKey::parse("not base64!").unwrap_err();
        assert!(junk.contains("base64"), "{junk}");
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,80}") {
            let _ = UpdateUrl::parse(&s);
            let _ = PublicKey::parse(&s);
        }
    }
}
