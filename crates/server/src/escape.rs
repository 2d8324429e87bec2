//! HTML escaping for the few pages written as strings (the printable export, the SVG
//! charts' text); the maud templates escape by themselves.

/// Escapes text for HTML element content and attribute values (for the few pages still
/// written as strings elsewhere, e.g. the printable export).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
