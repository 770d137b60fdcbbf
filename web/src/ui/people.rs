//! Things shown to people as they would say them: a browser's user-agent as "Chrome on
//! Linux", a time as "5 minutes ago".

use chrono::{DateTime, Utc};

/// "Firefox on Windows", "Safari on iPhone", "Chrome on Linux"; "Unknown browser" when the
/// string says nothing we know. Order matters: Edge and Opera say "Chrome" too, Chrome says
/// "Safari", Android says "Linux".
pub fn device(user_agent: &str) -> String {
    let ua = user_agent;
    let browser = if ua.contains("Edg/") || ua.contains("Edge/") {
        Some("Edge")
    } else if ua.contains("OPR/") || ua.contains("Opera") {
        Some("Opera")
    } else if ua.contains("Firefox/") || ua.contains("FxiOS/") {
        Some("Firefox")
    } else if ua.contains("Chrome/") || ua.contains("CriOS/") || ua.contains("Chromium/") {
        Some("Chrome")
    } else if ua.contains("Safari/") && ua.contains("Version/") {
        Some("Safari")
    } else if ua.starts_with("curl/") {
        Some("curl")
    } else if ua.contains("node") || ua.starts_with("Node") {
        Some("Node.js")
    } else {
        None
    };
    let os = if ua.contains("iPhone") {
        Some("iPhone")
    } else if ua.contains("iPad") {
        Some("iPad")
    } else if ua.contains("Android") {
        Some("Android")
    } else if ua.contains("Windows") {
        Some("Windows")
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        Some("macOS")
    } else if ua.contains("CrOS") {
        Some("ChromeOS")
    } else if ua.contains("Linux") || ua.contains("X11") {
        Some("Linux")
    } else {
        None
    };
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_string(),
        (None, Some(o)) => format!("A browser on {o}"),
        (None, None) => "Unknown browser".into(),
    }
}

/// How long before `now` an RFC 3339 time was: "just now", "5 minutes ago", "3 hours ago",
/// "2 days ago", then the date.
pub fn ago_from(at: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(at) else {
        return "never".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match secs {
        0..60 => "just now".into(),
        60..3600 => plural(secs / 60, "minute"),
        3600..86_400 => plural(secs / 3600, "hour"),
        86_400..2_592_000 => plural(secs / 86_400, "day"),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// [`ago_from`] the present.
pub fn ago(v: &serde_json::Value) -> String {
    v.as_str()
        .map(|s| ago_from(s, Utc::now()))
        .unwrap_or_else(|| "never".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_read_as_people_say_them() {
        for (ua, want) in [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on Windows",
            ),
            ("curl/8.5.0", "curl"),
            ("", "Unknown browser"),
            ("something else", "Unknown browser"),
        ] {
            assert_eq!(device(ua), want, "{ua}");
        }
    }

    #[test]
    fn times_read_as_how_long_ago() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (at, want) in [
            ("2026-12-02T11:59:30Z", "just now"),
            ("2026-12-02T11:59:00Z", "1 minute ago"),
            ("2026-12-02T11:55:00Z", "5 minutes ago"),
            ("2026-12-02T09:00:00Z", "3 hours ago"),
            ("2026-11-30T12:00:00Z", "2 days ago"),
            ("2026-10-01T12:00:00Z", "2026-10-01"),
            ("2026-12-02T12:00:05Z", "just now"),
            ("not a time", "never"),
        ] {
            assert_eq!(ago_from(at, now), want, "{at}");
        }
    }
}
