//! Directory listings as HTML.

use super::cond::http_date;
use super::path::percent_encode_segment;

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file name.
    pub name: String,
    /// Whether it is a directory (listed with a trailing `/`).
    pub is_dir: bool,
    /// Size in bytes (files only).
    pub size: u64,
    /// Modification time, Unix seconds.
    pub modified: i64,
}

/// Escapes text for HTML content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A size for people: `512 B`, `1.5 KiB`, `3.0 MiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// The listing page of the directory at URL path `display_path` (decoded,
/// ending with `/`). Directories come first, then files, each sorted by
/// name; every name is escaped and every link percent-encoded.
pub fn render(display_path: &str, mut entries: Vec<Entry>) -> String {
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    let title = escape_html(display_path);
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Index of {title}</title>\n</head>\n<body>\n<h1>Index of {title}</h1>\n\
         <table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if display_path != "/" {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in &entries {
        let slash = if e.is_dir { "/" } else { "" };
        // "./" keeps a name with a colon from reading as a URL scheme.
        let href = format!("./{}{slash}", percent_encode_segment(&e.name));
        let size = if e.is_dir {
            "-".to_string()
        } else {
            human_size(e.size)
        };
        html.push_str(&format!(
            "<tr><td><a href=\"{}\">{}{slash}</a></td><td>{size}</td><td>{}</td></tr>\n",
            escape_html(&href),
            escape_html(&e.name),
            http_date(e.modified),
        ));
    }
    html.push_str("</table>\n</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, is_dir: bool) -> Entry {
        Entry {
            name: name.into(),
            is_dir,
            size: 2048,
            modified: 0,
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(
            escape_html("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }

    #[test]
    fn sorted_escaped_linked() {
        let html = render(
            "/a <b>/",
            vec![
                e("zeta.txt", false),
                e("<script>alert(1)</script>", false),
                e("alpha", true),
                e("b&b.txt", false),
                e("x:y", false),
            ],
        );
        assert!(html.contains("<title>Index of /a &lt;b&gt;/</title>"));
        assert!(!html.contains("<script>"));
        assert!(html.contains(">&lt;script&gt;alert(1)&lt;/script&gt;</a>"));
        assert!(html.contains("href=\"./%3Cscript%3Ealert(1)%3C%2Fscript%3E\""));
        assert!(html.contains("href=\"./b&amp;b.txt\">b&amp;b.txt</a>"));
        assert!(html.contains("href=\"./alpha/\">alpha/</a>"));
        assert!(html.contains("href=\"./x:y\""));
        assert!(html.contains("href=\"../\""));
        assert!(html.contains("2.0 KiB"));
        let order: Vec<usize> = ["alpha/", "&lt;script", "b&amp;b", "x:y", "zeta.txt"]
            .iter()
            .map(|n| html.find(n).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(!render("/", vec![]).contains("../"));
    }
}
