//! HTTP `Range: bytes=…` for `GET /uri/{cap}` (RFC 9110 §14): one range is
//! served as `206 Partial Content`; several ranges, or another unit, are
//! ignored (the whole file is served, which the RFC allows); a range that
//! lies outside the file is `416`.

/// What a `Range` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wanted {
    /// The whole file.
    All,
    /// Bytes `start..end` (end exclusive).
    Part(u64, u64),
    /// Nothing that exists: answer 416.
    Unsatisfiable,
}

/// Interprets the `Range` header value `h` for a file of `size` bytes.
pub(super) fn wanted(h: &str, size: u64) -> Wanted {
    let Some(spec) = h.trim().strip_prefix("bytes=") else { return Wanted::All };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Wanted::All };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => Wanted::Unsatisfiable,
            Some(n) if size > 0 => Wanted::Part(size.saturating_sub(n), size),
            Some(_) => Wanted::Unsatisfiable,
            None => Wanted::All,
        },
        // bytes=A-: from A to the end.
        (false, true) => match num(a) {
            Some(a) if a < size => Wanted::Part(a, size),
            Some(_) => Wanted::Unsatisfiable,
            None => Wanted::All,
        },
        // bytes=A-B, inclusive.
        (false, false) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b && a < size => Wanted::Part(a, b.min(size - 1) + 1),
            (Some(a), Some(b)) if a <= b => Wanted::Unsatisfiable,
            _ => Wanted::All,
        },
        (true, true) => Wanted::All,
    }
}

/// The byte range a request with `headers` wants of a body of `size`
/// bytes, with whether it is partial; `None`: nothing that exists (answer
/// [`unsatisfiable`]).
pub(super) fn asked(headers: &axum::http::HeaderMap, size: u64) -> Option<(u64, u64, bool)> {
    let w = headers
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Wanted::All, |h| wanted(h, size));
    match w {
        Wanted::All => Some((0, size, false)),
        Wanted::Part(a, b) => Some((a, b, true)),
        Wanted::Unsatisfiable => None,
    }
}

/// The 416 answer for a body of `size` bytes.
pub(super) fn unsatisfiable(size: u64) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    axum::response::IntoResponse::into_response((
        StatusCode::RANGE_NOT_SATISFIABLE,
        [(header::CONTENT_RANGE, format!("bytes */{size}"))],
    ))
}

/// Adds the range headers of an answer for bytes `start..end` of `size`.
pub(super) fn headers(
    resp: axum::http::response::Builder,
    start: u64,
    end: u64,
    size: u64,
    partial: bool,
) -> axum::http::response::Builder {
    use axum::http::{header, StatusCode};
    let resp =
        resp.header(header::CONTENT_LENGTH, end - start).header(header::ACCEPT_RANGES, "bytes");
    if partial {
        resp.status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end.max(1) - 1))
    } else {
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let w = |h| wanted(h, 1000);
        assert_eq!(w("bytes=0-0"), Wanted::Part(0, 1));
        assert_eq!(w("bytes=10-19"), Wanted::Part(10, 20));
        assert_eq!(w("bytes=990-5000"), Wanted::Part(990, 1000));
        assert_eq!(w("bytes=500-"), Wanted::Part(500, 1000));
        assert_eq!(w("bytes=-100"), Wanted::Part(900, 1000));
        assert_eq!(w("bytes=-5000"), Wanted::Part(0, 1000));
        assert_eq!(w("bytes=1000-"), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=1000-1001"), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-0"), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=0-1,5-6"), Wanted::All);
        assert_eq!(w("items=0-1"), Wanted::All);
        assert_eq!(w("bytes=9-3"), Wanted::All);
        assert_eq!(w("bytes=x-3"), Wanted::All);
        assert_eq!(wanted("bytes=-5", 0), Wanted::Unsatisfiable);
    }
}
