//! `twill web`: a static file server.
//!
//! The logic is independent of the HTTP machine and unit-tested on its own:
//! [`path`] (request target → file under the root, never outside it),
//! [`mime`] (content types), [`range`] (`Range`/206/416), [`cond`]
//! (`ETag`, `Last-Modified`, 304/412), [`listing`] (directory pages) and
//! [`files`], which puts them together into a [`files::Reply`] for one
//! request.

pub mod cache;
pub mod cond;
pub mod files;
pub mod listing;
pub mod mime;
pub mod path;
pub mod range;
pub mod service;

#[cfg(test)]
pub(crate) mod no_panic {
    //! Arbitrary input never panics the parsers (a cheap stand-in for a
    //! fuzz target: xorshift strings over an alphabet rich in the
    //! characters each parser cares about).

    /// `n` strings drawn from `alphabet`.
    pub(crate) fn strings(seed: u64, alphabet: &[&str], n: usize) -> Vec<String> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|_| {
                let len = (next() % 24) as usize;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn parsers_take_anything() {
        let alphabet = [
            "/", "%", "2e", "2f", "00", "ff", ".", "..", "a", "?", "#", "\\", "é", "\0", "-", "=",
            ",", "bytes", " ", "0", "9", "1", "W/", "\"", "*", ":", "GMT", "Nov", "http://",
        ];
        for s in strings(0x1234_5678, &alphabet, 20_000) {
            if let Ok(t) = super::path::parse_target(&s) {
                assert!(t
                    .segments
                    .iter()
                    .all(|g| !g.is_empty() && g != "." && g != ".." && !g.contains(['/', '\0'])));
            }
            if let super::range::RangeAnswer::Partial { start, len } =
                super::range::evaluate(Some(&s), 100)
            {
                assert!(len >= 1 && start + len <= 100, "{s:?}");
            }
            let _ = super::cond::parse_http_date(&s);
            let v = super::cond::Validators::new(10, 1000, 0, 5000);
            let c = super::cond::Conditions {
                if_match: Some(&s),
                if_none_match: Some(&s),
                if_range: Some(&s),
                ..Default::default()
            };
            let _ = super::cond::evaluate(&c, &v);
            let _ = super::cond::if_range_holds(&c, &v);
            let _ = super::mime::for_name(&s);
        }
    }
}
