//! The dashboard: server-rendered HTML, no JavaScript, for a security team
//! to see the fleet in a browser. Sign-in takes a reader (or admin) token,
//! kept in an HttpOnly, SameSite=Strict cookie scoped to `/ui`; the API
//! never accepts that cookie.

mod alerts;
mod camera;
mod html;
mod incidents;
mod pages;
mod summary;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::auth::{SESSION_COOKIE, caller_for, cookie_token};
use crate::error::ApiError;
use crate::state::AppState;
use html::{esc, page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", get(logout))
        .route("/ui/alerts", get(alerts::alerts_page))
        .merge(pages::router())
}

/// A signed-in dashboard user; anyone else is sent to the sign-in page.
#[derive(Debug, Clone, Copy)]
pub struct Viewer;

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Viewer, Response> {
        let Some(token) = cookie_token(parts) else {
            return Err(Redirect::to("/ui/login").into_response());
        };
        match caller_for(state, token).await {
            Ok(c) if c.role.reads_fleet() => Ok(Viewer),
            Ok(_) | Err(ApiError::Unauthorized(_)) => {
                Err(Redirect::to("/ui/login").into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let err = error
        .map(|e| format!("<p class=\"err\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1><p class=\"lead\">Paste a reader token. An administrator makes one with \
         <code>lenscap-collector token create --role reader</code>.</p>{err}\
         <form class=\"login\" method=\"post\" action=\"/ui/login\">\
         <label for=\"token\">Reader token</label>\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"off\" required>\
         <button type=\"submit\">Sign in</button></form>"
    );
    let mut resp = page("Sign in", "", &body);
    *resp.status_mut() = status;
    resp
}

async fn login_form() -> Response {
    login_page(StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return login_page(StatusCode::BAD_REQUEST, Some("The form was incomplete."));
    };
    let token = form.token.trim();
    // Only token characters go into the cookie; anything else cannot be a
    // token we issued.
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not a lenscap token."),
        );
    }
    match caller_for(&state, token).await {
        Ok(c) if c.role.reads_fleet() => {
            let secure = if state.tls { "; Secure" } else { "" };
            let cookie = format!(
                "{SESSION_COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=43200{secure}"
            );
            let mut resp = Redirect::to("/ui/").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Ok(c) => login_page(
            StatusCode::FORBIDDEN,
            Some(&format!(
                "A {} token cannot read the dashboard; use a reader token.",
                c.role.as_str()
            )),
        ),
        Err(ApiError::Unauthorized(_)) => login_page(
            StatusCode::UNAUTHORIZED,
            Some("This collector does not know that token."),
        ),
        Err(e) => e.into_response(),
    }
}

async fn logout() -> Response {
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "lenscap_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

/// Used by pages for the "not found" case with the dashboard's look.
fn not_found(what: &str) -> Response {
    let mut resp = page(
        "Not found",
        "/ui/",
        &format!("<h1>Not found</h1><p>{}</p>", esc(what)),
    );
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}
