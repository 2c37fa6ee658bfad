//! Where logins and logouts send the browser: which `next` is acceptable, and how the
//! result (`jwt` or `error`) is added to it.

use crate::config::origin_of;

/// The longest `next` a login or logout takes: it is stored with each login in progress.
pub const MAX_NEXT_BYTES: usize = 2048;

/// `next` when it is an absolute http(s) URL of at most [`MAX_NEXT_BYTES`] on one of
/// `origins`, as the URL parser writes it (tabs and line breaks dropped, as browsers do, so
/// that a redirect header never carries them raw).
pub fn validate_next(next: &str, origins: &[String]) -> Result<String, String> {
    if next.len() > MAX_NEXT_BYTES {
        return Err(format!("next is longer than {MAX_NEXT_BYTES} bytes"));
    }
    let absolute = || "next must be an absolute http(s) URL".to_owned();
    let parsed = url::Url::parse(next).map_err(|_| absolute())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(absolute());
    }
    let origin = origin_of(parsed.as_str()).ok_or_else(absolute)?;
    if origins.contains(&origin) {
        Ok(parsed.into())
    } else {
        Err(format!("next is not on an allowed origin ({origin})"))
    }
}

/// Where a login sends the browser back: `next` with `jwt` or `error` (`key`) set to
/// `value`. A `jwt` or `error` already in `next` is dropped, so that the app never reads a
/// planted one first.
pub fn landing_url(next: &str, key: &str, value: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(next) else {
        return next.to_owned();
    };
    // The app's own parameters stay as they were written.
    let kept: Vec<String> = parsed
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            let name = form_urlencoded::parse(pair.as_bytes()).next();
            !pair.is_empty() && !name.is_some_and(|(name, _)| name == "jwt" || name == "error")
        })
        .map(str::to_owned)
        .collect();
    parsed.set_query((!kept.is_empty()).then(|| kept.join("&")).as_deref());
    parsed.query_pairs_mut().append_pair(key, value);
    parsed.into()
}

/// Appends `key=value` to a URL's query, keeping what is there.
pub fn with_param(url: &str, key: &str, value: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.query_pairs_mut().append_pair(key, value);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever `next` is, an accepted one is a well-formed http(s) URL on an allowed
        /// origin with nothing raw in it; and its landing URL carries exactly one result.
        #[test]
        fn next_is_accepted_only_when_safe(
            path in ".{0,80}",
            scheme in proptest::sample::select(vec!["https", "http", "javascript", "data", "HTTPS", ""]),
            host in proptest::sample::select(vec!["app.example.com", "APP.example.com", "evil.example", "app.example.com.evil.example", "app.example.com:443", "user@app.example.com", ""]),
            token in "[A-Za-z0-9._-]{1,40}",
        ) {
            let origins = vec!["https://app.example.com".to_owned()];
            let next = format!("{scheme}://{host}/{path}");
            if let Ok(accepted) = validate_next(&next, &origins) {
                let parsed = url::Url::parse(&accepted).unwrap();
                proptest::prop_assert_eq!(parsed.origin().ascii_serialization(), "https://app.example.com");
                proptest::prop_assert!(!accepted.chars().any(|c| c.is_control() || c == ' '));
                for key in ["jwt", "error"] {
                    let landing = landing_url(&accepted, key, &token);
                    let landed = url::Url::parse(&landing).unwrap();
                    let results: Vec<_> = landed.query_pairs()
                        .filter(|(k, _)| k == "jwt" || k == "error")
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                    proptest::prop_assert_eq!(results, vec![(key.to_owned(), token.clone())]);
                    proptest::prop_assert_eq!(landed.origin(), parsed.origin());
                }
            }
        }

        /// Arbitrary text never panics and is never accepted unless it is a URL.
        #[test]
        fn any_text_as_next(next in "\\PC{0,300}") {
            let origins = vec!["https://app.example.com".to_owned()];
            if let Ok(accepted) = validate_next(&next, &origins) {
                proptest::prop_assert!(accepted.starts_with("https://app.example.com/"));
            }
        }
    }

    #[test]
    fn a_landing_url_drops_planted_results() {
        assert_eq!(
            landing_url(
                "https://app.example.com/cb?jwt=planted&x=1&error=planted#frag",
                "jwt",
                "a.b.c"
            ),
            "https://app.example.com/cb?x=1&jwt=a.b.c#frag"
        );
        assert_eq!(
            landing_url("https://app.example.com/cb?jwt=planted", "error", "no"),
            "https://app.example.com/cb?error=no"
        );
    }

    #[test]
    fn next_keeps_its_parameters_and_gains_one() {
        assert_eq!(
            with_param("https://app.example.com/cb?x=1#frag", "jwt", "a.b.c"),
            "https://app.example.com/cb?x=1&jwt=a.b.c#frag"
        );
    }
}
