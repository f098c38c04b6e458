//! URL rules, `Retry-After`, error bodies, and the client against a raw
//! HTTP server on 127.0.0.1 answering exactly what each test needs:
//! redirects not followed, answers sorted, a 200 that is not the API's
//! refused.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;

#[test]
fn collector_urls() {
    let u = CollectorUrl::parse("https://collector.example.com/").unwrap();
    assert_eq!(
        u.endpoint("/api/v1/events"),
        "https://collector.example.com/api/v1/events"
    );
    assert_eq!(u.authority(), "collector.example.com");
    let u = CollectorUrl::parse("https://c.example.com:8470/lenscap").unwrap();
    assert_eq!(
        u.endpoint("/api/v1/policy"),
        "https://c.example.com:8470/lenscap/api/v1/policy"
    );
    assert_eq!(u.authority(), "c.example.com:8470");
    for ok in [
        "http://127.0.0.1:8470",
        "http://127.1.2.3",
        "http://[::1]:8470/",
        "http://localhost:1",
        "http://LOCALHOST",
    ] {
        assert!(CollectorUrl::parse(ok).unwrap().loopback, "{ok}");
    }
    for (bad, why) in [
        ("http://collector.example.com", "clear text"),
        ("http://10.0.0.1", "clear text"),
        ("ftp://c.example.com", "scheme"),
        ("https://user:pw@c.example.com", "user name"),
        ("https://c.example.com/?x=1", "query"),
        ("https://c.example.com/#x", "fragment"),
        ("collector.example.com", "relative URL"),
        ("", "relative URL"),
    ] {
        let err = CollectorUrl::parse(bad).unwrap_err();
        assert!(
            err.contains(why) && err.contains("https://"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn retry_after_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    // RFC 9110's own example date, 60 s after `now`.
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("999999999", now), Some(MAX_RETRY_AFTER));
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
}

#[test]
fn error_bodies_become_messages() {
    assert_eq!(
        error_message(r#"{"code":"bad_request","error":"event 3: field `seq`"}"#),
        "bad_request: event 3: field `seq`"
    );
    assert_eq!(error_message(""), "(no message)");
    assert_eq!(error_message(&"x".repeat(1000)).len(), 200);
}

// ---------------------------------------------------------------------
// Against a raw HTTP server.
// ---------------------------------------------------------------------

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// Serve each of `answers` on one connection, in order, and hand back
/// every request received (head lower-cased, then the body's length).
fn server(answers: Vec<String>) -> (CollectorUrl, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                head.push_str(&lower);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(format!("{head}body {length}"));
            stream.write_all(answer.as_bytes()).unwrap();
        }
    });
    (
        CollectorUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        rx,
    )
}

fn answer(status: &str, headers: &[&str], body: &str) -> String {
    let mut a = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for h in headers {
        a.push_str(h);
        a.push_str("\r\n");
    }
    a.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    a
}

fn token() -> HostToken {
    HostToken::new("lc_host_0123".into()).unwrap()
}

#[test]
fn redirects_are_not_followed_so_the_token_stays_home() {
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = elsewhere.local_addr().unwrap().port();
    let (url, requests) = server(vec![answer(
        "302 Found",
        &[&format!("Location: http://127.0.0.1:{other}/api/v1/events")],
        "",
    )]);
    let client = Client::new(url);
    let err = client.post_events(&token(), b"\x1f\x8b", 1).unwrap_err();
    let Failure::Unexpected { status, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 302);
    assert!(
        message.contains("not followed") && message.contains(&other.to_string()),
        "{message}"
    );
    let seen = requests.recv().unwrap();
    assert!(seen.starts_with("post /api/v1/events http/1.1"), "{seen}");
    assert!(
        seen.contains("authorization: bearer lc_host_0123"),
        "{seen}"
    );
    assert!(seen.contains("content-encoding: gzip"), "{seen}");
    assert!(seen.ends_with("body 2"), "{seen}");
    elsewhere.set_nonblocking(true).unwrap();
    assert!(
        elsewhere.accept().is_err(),
        "the redirect target was contacted"
    );
}

#[test]
fn every_answer_means_what_docs_api_says() {
    let api_error = |code: &str| format!(r#"{{"code":"{code}","error":"why"}}"#);
    let (url, _requests) = server(vec![
        answer("429 Too Many Requests", &["Retry-After: 3"], ""),
        answer("503 Service Unavailable", &[], ""),
        answer("401 Unauthorized", &[], &api_error("unauthorized")),
        answer("403 Forbidden", &[], &api_error("forbidden")),
        answer("413 Payload Too Large", &[], &api_error("too_large")),
        answer("400 Bad Request", &[], &api_error("bad_request")),
        answer("500 Internal Server Error", &[], &api_error("internal")),
        answer("404 Not Found", &[], "no such page"),
        answer(
            "200 OK",
            &["Content-Type: text/html"],
            "<html>Wi-Fi login</html>",
        ),
        answer("200 OK", &[], r#"{"accepted":1,"duplicate":0}"#),
        answer("200 OK", &[], r#"{"accepted":1,"duplicate":1}"#),
    ]);
    let client = Client::new(url);
    let post = || client.post_events(&token(), b"[]", 2);
    assert_eq!(
        post(),
        Err(Failure::Busy {
            status: 429,
            retry_after: Some(Duration::from_secs(3))
        })
    );
    assert_eq!(
        post(),
        Err(Failure::Busy {
            status: 503,
            retry_after: None
        })
    );
    assert_eq!(
        post(),
        Err(Failure::Unauthorized("unauthorized: why".into()))
    );
    assert_eq!(post(), Err(Failure::Forbidden("forbidden: why".into())));
    assert_eq!(post(), Err(Failure::TooLarge("too_large: why".into())));
    assert_eq!(post(), Err(Failure::BadRequest("bad_request: why".into())));
    assert_eq!(
        post(),
        Err(Failure::Server {
            status: 500,
            message: "internal: why".into()
        })
    );
    assert_eq!(
        post(),
        Err(Failure::Unexpected {
            status: 404,
            message: "no such page".into()
        })
    );
    // A portal's page and a partial count are not "stored".
    assert!(
        matches!(post(), Err(Failure::Unexpected { status: 200, message }) if message.contains("not the collector API's"))
    );
    assert!(
        matches!(post(), Err(Failure::Unexpected { status: 200, message }) if message.contains("1 of 2"))
    );
    assert_eq!(
        post(),
        Ok(IngestResponse {
            accepted: 1,
            duplicate: 1
        })
    );
}

#[test]
fn enroll_and_policy_requests() {
    let (url, requests) = server(vec![
        answer("200 OK", &[], r#"{"host_id":7,"token":"lc_host_abc"}"#),
        answer("304 Not Modified", &["ETag: \"e1\""], ""),
        answer("200 OK", &["ETag: \"e2\""], r#"{"catalog":[],"rules":[]}"#),
    ]);
    let client = Client::new(url);
    let request = EnrollRequest {
        host: lenscap_events::Host {
            hostname: "h".into(),
            hardware_uuid: None,
            serial: None,
            machine_id: None,
        },
        agent_version: "0.1.0".into(),
        enroll_key: None,
    };
    let got = client
        .enroll(&Secret::new("lc_enroll_s"), &request)
        .unwrap();
    assert_eq!(got.as_str(), "lc_host_abc");
    let seen = requests.recv().unwrap();
    assert!(
        seen.starts_with("post /api/v1/enroll")
            && seen.contains("authorization: bearer lc_enroll_s"),
        "{seen}"
    );
    assert_eq!(
        client.policy(&got, Some("\"e1\"")),
        Ok(PolicyAnswer::NotModified)
    );
    let seen = requests.recv().unwrap();
    assert!(
        seen.starts_with("get /api/v1/policy") && seen.contains("if-none-match: \"e1\""),
        "{seen}"
    );
    assert_eq!(
        client.policy(&got, Some("\"e1\"")),
        Ok(PolicyAnswer::Policy {
            body: r#"{"catalog":[],"rules":[]}"#.into(),
            etag: Some("\"e2\"".into())
        })
    );
}

#[test]
fn no_collector_listening_is_a_network_failure() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::new(CollectorUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    assert!(matches!(
        client.post_events(&token(), b"[]", 0),
        Err(Failure::Network(_))
    ));
}
