//! Bearer tokens: made here, stored only as hashes, checked on every
//! request.
//!
//! A token is `lc_<role>_` followed by 64 hex digits (32 random bytes). The
//! prefix lets secret scanners and people recognise a leaked one. Stored is
//! its SHA-256: tokens are random and long, so a fast hash is enough (a
//! slow password hash guards *guessable* secrets), and the lookup by hash
//! needs no constant-time comparison — the database compares digests, not
//! secrets.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Role;

/// Name of the dashboard's session cookie (it holds the reader token).
pub const SESSION_COOKIE: &str = "lenscap_session";

/// A new random token for `role`.
pub fn new_token(role: Role) -> Result<String, getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    Ok(format!("lc_{}_{}", role.as_str(), hex::encode(secret)))
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    lenscap_events::canonical::sha256_hex(token.as_bytes())
}

/// Hex digits of a token's hash that name it in `token list` and
/// `token revoke`. A prefix of a digest of 32 random bytes tells nothing
/// about the token.
pub const TOKEN_ID_LEN: usize = 12;

/// A token's id: the start of its hash.
pub fn token_id(hash: &str) -> &str {
    hash.get(..TOKEN_ID_LEN).unwrap_or(hash)
}

/// Who is calling, from their `Authorization: Bearer` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    pub host_id: Option<i64>,
}

impl Caller {
    /// Refuse unless the caller has one of `roles`; `doing` completes
    /// "this token may not …".
    pub fn require(&self, roles: &[Role], doing: &str) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "a {} token may not {doing}; that needs a {} token",
                self.role.as_str(),
                wanted.join(" or ")
            )))
        }
    }
}

/// The bearer token of a request, if it has one.
fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized(
            "the Authorization header must be `Bearer <token>`".into(),
        )),
    }
}

/// The session cookie's token, if the request carries one.
pub fn cookie_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Look a token up.
pub async fn caller_for(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    match state.store.find_token(&token_hash(token)).await? {
        Some(t) if t.revoked_at.is_none() => Ok(Caller {
            role: t.role,
            host_id: t.host_id,
        }),
        Some(t) => Err(ApiError::Unauthorized(format!(
            "this token was revoked on {}; a host enrols again, anyone else asks the collector's admin for a new token",
            crate::timefmt::human(t.revoked_at.unwrap_or_default())
        ))),
        None => Err(ApiError::Unauthorized(
            "unknown token: it was never issued by this collector, or was issued by another one"
                .into(),
        )),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        // Bearer only: accepting the dashboard's cookie here would let
        // another site's page make API calls with it.
        let token = bearer(parts)?.ok_or_else(|| {
            ApiError::Unauthorized(
                "no token: send `Authorization: Bearer <token>` (see `lenscap-collector token create`)"
                    .into(),
            )
        })?;
        caller_for(state, token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = new_token(Role::Reader).unwrap();
        let b = new_token(Role::Reader).unwrap();
        assert!(a.starts_with("lc_reader_"));
        assert_eq!(a.len(), "lc_reader_".len() + 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&parts(&[])).unwrap(), None);
        assert_eq!(
            bearer(&parts(&[("authorization", "Bearer abc")])).unwrap(),
            Some("abc")
        );
        assert_eq!(
            bearer(&parts(&[("authorization", "bearer  abc ")])).unwrap(),
            Some("abc")
        );
        assert!(bearer(&parts(&[("authorization", "Basic dXNlcjpwYXNz")])).is_err());
        assert!(bearer(&parts(&[("authorization", "Bearer ")])).is_err());
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let p = parts(&[("cookie", "a=1; lenscap_session=tok; b=2")]);
        assert_eq!(cookie_token(&p), Some("tok"));
        assert_eq!(cookie_token(&parts(&[("cookie", "a=1")])), None);
    }

    #[test]
    fn require_names_both_roles() {
        let c = Caller {
            role: Role::Reader,
            host_id: None,
        };
        let err = c
            .require(&[Role::Host], "send events")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "a reader token may not send events; that needs a host token"
        );
        assert!(c.require(&[Role::Reader, Role::Admin], "read").is_ok());
    }
}
