//! The community's video catalogue: a member that publishes a video
//! announces it as the service `video/ID` (persisted with the node's other
//! announcements, so it comes back after a restart), with its title,
//! description, format, duration and size; every node lists every member's
//! videos from the service directory.

use super::api::{CatalogueRow, CATALOGUE_PREFIX};
use super::state::Shared;
use cloudy_overlay::ServiceMeta;
use cloudy_streaming::vod::probe::{Container, Found};
use cloudy_streaming::vod::service::VideoRow;

/// Longest title kept.
const MAX_TITLE: usize = 120;
/// Longest description kept.
const MAX_DESCRIPTION: usize = 250;

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_string()
}

/// The catalogue entry of a video published here.
pub(super) fn entry(found: &Found, title: &str, description: &str, size: u64) -> ServiceMeta {
    let mut meta = ServiceMeta::new();
    meta.insert("title".into(), cut(title, MAX_TITLE));
    if !description.trim().is_empty() {
        meta.insert("description".into(), cut(description, MAX_DESCRIPTION));
    }
    meta.insert("format".into(), found.container.name().into());
    meta.insert("found".into(), cut(&found.describe(), 250));
    meta.insert("browser".into(), if found.plays_in_browsers() { "yes" } else { "no" }.into());
    if let Some(d) = found.duration {
        meta.insert("duration".into(), format!("{:.1}", d.as_secs_f64()));
    }
    meta.insert("size".into(), size.to_string());
    meta
}

/// Every member's published videos, by title; one row per video. `here`
/// is what this node holds (`Vod::list`).
pub(super) fn rows(s: &Shared, here: &[VideoRow]) -> Vec<CatalogueRow> {
    let held = |id: &str| here.iter().find(|v| v.id == id).map_or(0, |v| v.held);
    let mut rows: Vec<CatalogueRow> = Vec::new();
    for (name, p) in s.overlay.snapshot().providers(None) {
        let Some(id) = name.strip_prefix(CATALOGUE_PREFIX) else { continue };
        if rows.iter().any(|r| r.id == id) {
            continue;
        }
        let get = |k: &str| p.meta.get(k).cloned().unwrap_or_default();
        let size: u64 = get("size").parse().unwrap_or(0);
        rows.push(CatalogueRow {
            id: id.to_string(),
            title: get("title"),
            description: get("description"),
            format: get("format"),
            found: get("found"),
            browser: get("browser") == "yes",
            duration_s: get("duration").parse().ok(),
            size,
            publisher: p.peer.to_string(),
            held_here: held(id),
            pieces: size.div_ceil(cloudy_streaming::vod::manifest::PIECE),
            holders: None,
        });
    }
    rows.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id)));
    rows
}

/// The container of video `id`, as its catalogue entry says (MPEG-TS when
/// it has none).
pub(super) fn container_of(s: &Shared, id: &str) -> Container {
    let name = format!("{CATALOGUE_PREFIX}{id}");
    let providers = s.overlay.snapshot().providers(Some(&name));
    match providers.first().and_then(|(_, p)| p.meta.get("format")).map(String::as_str) {
        Some("mp4") => Container::Mp4,
        _ => Container::MpegTs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_keeps_short_fields_and_says_what_was_found() {
        let found = Found {
            container: Container::Mp4,
            video: Some("H.264".into()),
            audio: Some("AAC".into()),
            duration: Some(std::time::Duration::from_millis(12_340)),
        };
        let long = "é".repeat(200);
        let m = entry(&found, &long, "  ", 1234);
        assert!(m["title"].len() <= MAX_TITLE && m["title"].starts_with('é'));
        assert!(!m.contains_key("description"));
        assert_eq!((m["format"].as_str(), m["browser"].as_str()), ("mp4", "yes"));
        assert_eq!((m["duration"].as_str(), m["size"].as_str()), ("12.3", "1234"));
        assert!(m.values().all(|v| v.len() <= 256), "service values stay within 256 bytes");
    }
}
