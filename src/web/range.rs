//! The `Range` request header (RFC 9110 §14.2), for a single byte range.

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send the whole body with 200: no header, one we do not understand
    /// (which RFC 9110 says to ignore), or several ranges (which we may
    /// answer in full rather than with multipart/byteranges).
    Full,
    /// Send bytes `start..start + len` with 206 and
    /// `Content-Range: bytes start-(start+len-1)/total`.
    Partial {
        /// First byte.
        start: u64,
        /// How many bytes (at least one).
        len: u64,
    },
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable,
}

/// Evaluates `header` (the `Range` value, if any) against a body of `total`
/// bytes.
pub fn evaluate(header: Option<&str>, total: u64) -> RangeAnswer {
    let Some(h) = header else {
        return RangeAnswer::Full;
    };
    let h = h.trim();
    let Some((unit, set)) = h.split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAnswer::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.len() != 1 {
        // None (invalid) or several: answer in full.
        return RangeAnswer::Full;
    }
    let Some((first, last)) = specs[0].split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Some(n) = num(last) else {
            return RangeAnswer::Full;
        };
        if n == 0 || total == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        let len = n.min(total);
        return RangeAnswer::Partial {
            start: total - len,
            len,
        };
    }
    let Some(start) = num(first) else {
        return RangeAnswer::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match num(last) {
            Some(e) if e >= start => Some(e),
            // last < first is invalid syntax: ignore the header.
            _ => return RangeAnswer::Full,
        }
    };
    if start >= total {
        return RangeAnswer::Unsatisfiable;
    }
    let end = end.unwrap_or(u64::MAX).min(total - 1);
    RangeAnswer::Partial {
        start,
        len: end - start + 1,
    }
}

/// The `Content-Range` value of a 206.
pub fn content_range(start: u64, len: u64, total: u64) -> String {
    format!("bytes {}-{}/{}", start, start + len - 1, total)
}

/// The `Content-Range` value of a 416.
pub fn unsatisfied_range(total: u64) -> String {
    format!("bytes */{total}")
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::*;
    use super::*;

    fn p(start: u64, len: u64) -> RangeAnswer {
        Partial { start, len }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate(None, 100), Full);
        assert_eq!(evaluate(Some("bytes=0-0"), 100), p(0, 1));
        assert_eq!(evaluate(Some("bytes=0-99"), 100), p(0, 100));
        assert_eq!(evaluate(Some("bytes=10-"), 100), p(10, 90));
        assert_eq!(evaluate(Some("bytes=10-1000"), 100), p(10, 90));
        assert_eq!(evaluate(Some("bytes=-10"), 100), p(90, 10));
        assert_eq!(evaluate(Some("bytes=-1000"), 100), p(0, 100));
        assert_eq!(evaluate(Some(" Bytes = 5 - 9 "), 100), p(5, 5));
        assert_eq!(evaluate(Some("bytes=5-9,"), 100), p(5, 5));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(evaluate(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=-5"), 0), Unsatisfiable);
        assert_eq!(unsatisfied_range(100), "bytes */100");
        assert_eq!(content_range(10, 90, 100), "bytes 10-99/100");
    }

    #[test]
    fn ignored_headers_mean_full() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0-1,5-6",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(evaluate(Some(h), 100), Full, "{h:?}");
        }
    }
}
