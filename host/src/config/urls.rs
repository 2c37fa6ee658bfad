//! URL rules of the configuration: the external address, origins, loopback.

/// `https://HOST` for a bare host name (as the old service read it); otherwise the URL
/// itself, which must be http(s) with a host, without a trailing `/`.
pub fn normalize_external_address(address: &str) -> Result<String, String> {
    let address = address.trim().trim_end_matches('/');
    if address.is_empty() {
        return Err("is empty".into());
    }
    let url = if address.contains("://") {
        address.to_owned()
    } else {
        format!("https://{address}")
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{address}` must be a host name or an http(s) URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{address}` has no host"));
    }
    Ok(url)
}

/// Whether the URL's host is a loopback address (or `localhost`).
pub fn is_loopback_url(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `scheme://host[:port]` of a URL, lower-case.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.origin() {
        url::Origin::Tuple(..) => Some(parsed.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// An origin is `scheme://host[:port]`, with nothing after it; returned as browsers
/// serialize it (lower-case host, no default port), the form `origin_of` gives.
pub fn normalize_origin(origin: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected scheme://host[:port], with no path";
    if origin.contains('*') {
        return Err(
            "wildcards are not supported: list each origin (scheme://host[:port]) on its own"
                .into(),
        );
    }
    let parsed = url::Url::parse(origin.trim()).map_err(|_| EXPECTED.to_owned())?;
    let bare = parsed.path() == "/" && parsed.query().is_none() && parsed.fragment().is_none();
    if !matches!(parsed.scheme(), "http" | "https") || !bare || !parsed.username().is_empty() {
        return Err(EXPECTED.into());
    }
    origin_of(origin.trim()).ok_or_else(|| EXPECTED.to_owned())
}
