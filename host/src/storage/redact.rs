//! Database URLs in messages, without their secrets. A password can sit in the URL's user
//! information (`postgres://user:pw@host/db`), in its query (`?password=pw`,
//! `?sslpassword=pw`), or in a libpq keyword/value string (`host=db password='pw'`): every
//! form is redacted.

const REDACTED: &str = "***";

/// Whether a parameter named `key` holds a secret (`password`, `sslpassword`, `PASS`…).
fn is_secret_key(key: &str) -> bool {
    key.trim().to_ascii_lowercase().contains("pass")
}

/// A database URL (or libpq keyword/value string) with every password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url.find("://") {
        Some(scheme_end) => redact_uri(url, scheme_end + 3),
        None => redact_keyword_values(url),
    }
}

/// `scheme://[user[:password]@]hosts[/db][?query]`; `start` is where the authority begins.
fn redact_uri(url: &str, start: usize) -> String {
    let (before_query, query) = match url[start..].find('?') {
        Some(at) => url.split_at(start + at),
        None => (url, ""),
    };
    // The last `@` ends the user information, wherever a careless password put others.
    let mut redacted = match before_query[start..].rfind('@') {
        Some(at) => {
            let credentials = &before_query[start..start + at];
            match credentials.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:{REDACTED}{}",
                    &before_query[..start],
                    &before_query[start + at..]
                ),
                None => before_query.to_owned(),
            }
        }
        None => before_query.to_owned(),
    };
    if let Some(query) = query.strip_prefix('?') {
        redacted.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_key(key) => format!("{key}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

/// `key=value key = 'quoted value' …` (libpq): white space may surround `=`, and a quoted
/// value may hold spaces and `\'`. Redacted items are written back as `key=***`.
fn redact_keyword_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start();
        out.push_str(&rest[..rest.len() - trimmed.len()]);
        rest = trimmed;
        if rest.is_empty() {
            return out;
        }
        let key_end = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        let Some(value) = rest[key_end..].trim_start().strip_prefix('=') else {
            // Not a `key=value` item: the word as it is.
            out.push_str(key);
            rest = &rest[key_end..];
            continue;
        };
        let value = value.trim_start();
        let end = value_end(value);
        out.push_str(key);
        out.push('=');
        out.push_str(if is_secret_key(key) {
            REDACTED
        } else {
            &value[..end]
        });
        rest = &value[end..];
    }
}

/// Where a libpq value starting at `value` ends: after its closing quote, or at white space.
fn value_end(value: &str) -> usize {
    let Some(quoted) = value.strip_prefix('\'') else {
        return value.find(char::is_whitespace).unwrap_or(value.len());
    };
    let mut escaped = false;
    for (i, c) in quoted.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => return i + 2,
            _ => {}
        }
    }
    value.len()
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    proptest::proptest! {
        /// A password of any characters a URL or libpq value can hold never survives.
        #[test]
        fn no_password_survives(password in "[A-Za-z0-9!$%()*+,;=~._-]{4,40}") {
            let marked = format!("Zq{password}Zq");
            for url in [
                format!("postgres://auth:{marked}@db:5432/auth"),
                format!("postgres://auth@db/auth?sslmode=disable&password={marked}"),
                format!("host=db password={marked} dbname=auth"),
                format!("host=db password = '{}' dbname=auth", marked.replace('\'', "\\'")),
            ] {
                let redacted = redact_url(&url);
                proptest::prop_assert!(!redacted.contains(&marked), "{}", redacted);
                proptest::prop_assert!(redacted.contains("***"), "{}", redacted);
            }
        }

        /// Arbitrary text never panics.
        #[test]
        fn any_text(text in "\\PC{0,200}") {
            let _ = redact_url(&text);
        }
    }

    #[test]
    fn every_form_of_password_is_redacted() {
        for (url, redacted) in [
            (
                "postgres://auth:s3cret@db:5432/auth",
                "postgres://auth:***@db:5432/auth",
            ),
            ("sqlite://data/auth.db", "sqlite://data/auth.db"),
            ("postgres://auth@db/auth", "postgres://auth@db/auth"),
            (
                "postgres://auth@db/auth?sslmode=disable&password=s3cret",
                "postgres://auth@db/auth?sslmode=disable&password=***",
            ),
            (
                "postgresql://a:b@c@db/x?PASSWORD=s3cret&sslpassword=s3cret&application_name=p",
                "postgresql://a:***@db/x?PASSWORD=***&sslpassword=***&application_name=p",
            ),
            (
                "host=db port=5432 password=s3cret dbname=auth",
                "host=db port=5432 password=*** dbname=auth",
            ),
            (
                "host=db password = 's3 cr\\'et' user=auth",
                "host=db password=*** user=auth",
            ),
            ("password='unterminated s3cret", "password=***"),
            ("mysql://u:s3cret@x/y", "mysql://u:***@x/y"),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
            assert!(!redact_url(url).contains("s3"), "{url}");
        }
    }
}
