//! A directory as an HTML page a browser can walk (the gateway's
//! `GET /uri/DIRCAP/path`).

use super::api::DirListing;
use super::client::encode;
use axum::response::Response;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The page of `listing`, reached at `path` under capability `root`
/// (links keep walking from the same root).
pub(super) fn page(listing: &DirListing, root: &str, path: &str) -> Response {
    let parts: Vec<&str> = cloudy_storage::dirs::split(path);
    let href = |p: &[&str]| {
        let tail: Vec<String> = p.iter().map(|c| encode(c)).collect();
        if tail.is_empty() {
            format!("/uri/{}", encode(root))
        } else {
            format!("/uri/{}/{}", encode(root), tail.join("/"))
        }
    };
    let mut crumbs = format!("<a href=\"{}\">root</a>", href(&[]));
    for i in 0..parts.len() {
        crumbs += &format!(" / <a href=\"{}\">{}</a>", href(&parts[..=i]), esc(parts[i]));
    }
    let mut rows = String::new();
    for e in &listing.entries {
        let mut p = parts.clone();
        p.push(&e.name);
        let (icon, size) =
            if e.kind == "dir" { ("📁", String::new()) } else { ("", e.size.to_string()) };
        rows += &format!(
            "<tr><td>{icon} <a href=\"{}\">{}</a>{}</td><td>{}</td><td>{size}</td><td><a href=\"/uri/{}\">read-only link</a></td></tr>\n",
            href(&p),
            esc(&e.name),
            if e.conflict { " <em>(conflict copy)</em>" } else { "" },
            e.kind,
            encode(&e.read_cap),
        );
    }
    let bad: String = listing.bad.iter().map(|b| format!("<li>{}</li>", esc(b))).collect();
    let bad =
        if bad.is_empty() { String::new() } else { format!("<p>Not readable:</p><ul>{bad}</ul>") };
    let mode = if listing.writable { "writable" } else { "read-only" };
    super::tree::html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <link rel=\"stylesheet\" href=\"/ui/style.css\"></head><body><main>\
         <h1>{crumbs}</h1><p>{count} entries, {mode}; <a href=\"/uri/{ro}\">read-only link to this directory</a></p>\
         <table><thead><tr><th>name</th><th>kind</th><th>bytes</th><th></th></tr></thead><tbody>{rows}</tbody></table>{bad}\
         </main></body></html>",
        title = esc(parts.last().copied().unwrap_or("root")),
        count = listing.entries.len(),
        ro = encode(&listing.read_cap),
    ))
}
