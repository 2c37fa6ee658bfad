//! Reading a request: parameters from the query and a form body, the client token, the
//! JSONP callback.

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request};

use std::net::IpAddr;

use hyper::header::HeaderMap;

use super::response::Rejection;
use crate::config::{ClientIpHeader, IpRange};

/// The request's parameters: query first, then form fields (as Flask's `request.values`).
#[derive(Debug)]
pub struct Params {
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    auth_token: Option<String>,
    /// `Authorization: Bearer …`
    bearer: Option<String>,
    browser: Option<String>,
    /// Who sent the request (see [`client_address`]).
    client: IpAddr,
    request_id: String,
}

impl Params {
    /// Reads the query, and for a POST with a form body, the form (at most `max_body` bytes).
    /// `client` is who sent it, `request_id` its id.
    pub async fn read(
        request: Request<Incoming>,
        max_body: usize,
        client: IpAddr,
        request_id: &str,
    ) -> Result<Params, Rejection> {
        let (parts, body) = request.into_parts();
        let is_form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let mut form = hyper::body::Bytes::new();
        if parts.method == Method::POST && is_form {
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|length| length > max_body) {
                return Err(Rejection::PayloadTooLarge);
            }
            form = Limited::new(body, max_body)
                .collect()
                .await
                .map_err(|error| {
                    if error.downcast_ref::<LengthLimitError>().is_some() {
                        Rejection::PayloadTooLarge
                    } else {
                        // Broken chunked encoding, a connection cut mid-body…
                        Rejection::BadRequest("the request body cannot be read".into())
                    }
                })?
                .to_bytes();
        }
        Ok(Params::parse(
            parts.uri.query(),
            &parts.headers,
            &form,
            client,
            request_id,
        ))
    }

    /// The parameters of a request with this query, headers and form body (empty unless a
    /// form was posted). Any bytes are accepted: invalid UTF-8 is read lossily.
    fn parse(
        query: Option<&str>,
        headers: &HeaderMap,
        form: &[u8],
        client: IpAddr,
        request_id: &str,
    ) -> Params {
        let query = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let auth_token = headers
            .get("auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bearer = headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let browser = headers
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == crate::login::BROWSER_COOKIE)
            .map(|(_, value)| value.to_owned());
        Params {
            query,
            form: form_urlencoded::parse(form).into_owned().collect(),
            auth_token,
            bearer,
            browser,
            client,
            request_id: request_id.to_owned(),
        }
    }

    /// A parameter's value: from the query, else from the form.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .chain(self.form.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer` header.
    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// Who sent the request.
    pub fn client(&self) -> IpAddr {
        self.client
    }

    /// Who sent it and its id, as the audit trail records them.
    pub fn caller(&self) -> crate::audit::Caller {
        crate::audit::Caller {
            client: Some(self.client.to_string()),
            request_id: Some(self.request_id.clone()),
        }
    }

    /// The browser-binding cookie of a login in progress.
    pub fn browser(&self) -> Option<&str> {
        self.browser.as_deref()
    }

    /// The client token: the `auth-token` header, else the `jwt` parameter.
    pub fn jwt(&self) -> Option<&str> {
        self.auth_token.as_deref().or_else(|| self.get("jwt"))
    }

    /// The JSONP callback, when there is one; a name that is not a plain JavaScript
    /// identifier path is refused.
    pub fn callback(&self) -> Result<Option<&str>, Rejection> {
        match self.get("callback") {
            None => Ok(None),
            Some(name) if is_callback_name(name) => Ok(Some(name)),
            Some(_) => Err(Rejection::BadRequest(
                "callback must match ^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$".into(),
            )),
        }
    }
}

/// Who sent a request that reached us from `peer`: the peer itself, unless it is a trusted
/// proxy; then, reading only `header` (the one the operator named), the right-most address
/// that is not a trusted proxy. Addresses left of it were written by the client and are never
/// believed; the other forwarding header is never read.
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpRange],
    header: ClientIpHeader,
) -> IpAddr {
    let is_trusted = |address: IpAddr| trusted.iter().any(|range| range.contains(address));
    if !is_trusted(peer) {
        return peer;
    }
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<&str>>()
    };
    let hops: Vec<&str> = match header {
        ClientIpHeader::None => return peer,
        ClientIpHeader::XForwardedFor => values("x-forwarded-for")
            .into_iter()
            .map(str::trim)
            .collect(),
        ClientIpHeader::Forwarded => values("forwarded")
            .into_iter()
            // An element without `for=` says nothing about the client: nothing more can
            // be believed past it.
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (key, value) = pair.trim().split_once('=')?;
                        key.trim()
                            .eq_ignore_ascii_case("for")
                            .then(|| value.trim().trim_matches('"'))
                    })
                    .unwrap_or("")
            })
            .collect(),
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(address) => {
                client = address;
                if !is_trusted(address) {
                    break;
                }
            }
            // `unknown`, an obfuscated name, a missing `for`: nothing more can be believed.
            None => break,
        }
    }
    client
}

/// An address as proxies write it: `203.0.113.7`, `203.0.113.7:4711`, `[2001:db8::1]:4711`,
/// `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse() {
        return Some(address);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    hop.rsplit_once(':')?.0.parse().ok()
}

/// `^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$`
fn is_callback_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$');
    first_ok
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let proxies = [IpRange::parse("10.0.0.0/8").unwrap()];
        let xff = ClientIpHeader::XForwardedFor;
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_address(ip("198.51.100.9"), &spoofed, &proxies, xff),
            ip("198.51.100.9")
        );
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.2")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &chain, &proxies, xff),
            ip("203.0.113.7")
        );
        // Two header lines (the client's own, then the proxy's): the proxy's is right-most.
        let appended = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &appended, &proxies, xff),
            ip("203.0.113.7")
        );
        let forwarded = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        assert_eq!(
            client_address(
                ip("10.0.0.1"),
                &forwarded,
                &proxies,
                ClientIpHeader::Forwarded
            ),
            ip("2001:db8::7")
        );
        let none = headers(&[]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &none, &proxies, xff),
            ip("10.0.0.1")
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            client_address(
                ip("10.0.0.1"),
                &unknown,
                &proxies,
                ClientIpHeader::Forwarded
            ),
            ip("10.0.0.1")
        );
        assert_eq!(parse_hop("203.0.113.7:80"), Some(ip("203.0.113.7")));
    }

    /// The probe's attack: behind a proxy that sets `X-Forwarded-For`, a client's own
    /// `Forwarded: for=<victim>` is not read, and neither header is read unless named.
    #[test]
    fn only_the_named_header_is_read() {
        let proxies = [IpRange::parse("10.0.0.0/8").unwrap()];
        let both = headers(&[
            ("forwarded", "for=198.51.100.66"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        let peer = ip("10.0.0.1");
        let read = |header| client_address(peer, &both, &proxies, header);
        assert_eq!(read(ClientIpHeader::XForwardedFor), ip("203.0.113.7"));
        assert_eq!(read(ClientIpHeader::Forwarded), ip("198.51.100.66"));
        assert_eq!(read(ClientIpHeader::None), peer);
    }

    /// `Forwarded` values as proxies and clients write them: elements of `for=` addresses
    /// (bare, quoted, with ports, IPv6 in brackets), other pairs, junk and `unknown`.
    fn forwarded_header() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::{Just, Strategy};
        let address = proptest::prop_oneof![
            "(10|198|203)\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "(10|198|203)\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}:[0-9]{1,5}",
            "\\[2001:db8::[0-9a-f]{1,4}\\](:[0-9]{1,5})?",
            Just("unknown".to_owned()),
            "[a-z_]{0,8}",
        ];
        let element = (
            address,
            proptest::bool::ANY,
            "(;proto=https|;by=[a-z]{1,4}|)",
        )
            .prop_map(|(address, quoted, extra)| {
                if quoted {
                    format!("for=\"{address}\"{extra}")
                } else {
                    format!("for={address}{extra}")
                }
            });
        proptest::collection::vec(element, 0..5).prop_map(|elements| elements.join(", "))
    }

    proptest::proptest! {
        /// Whatever the headers say, the client is the peer or an address they named, and
        /// an untrusted peer is always the client.
        #[test]
        fn any_forwarding_headers(
            forwarded in forwarded_header(),
            x_forwarded_for in "[0-9a-f.:, \\[\\]]{0,120}",
            trusted_peer in proptest::bool::ANY,
            named in 0..3u8,
        ) {
            let proxies = [IpRange::parse("10.0.0.0/8").unwrap()];
            let peer: IpAddr = if trusted_peer { "10.0.0.1" } else { "198.51.100.1" }.parse().unwrap();
            let mut headers = HeaderMap::new();
            for (name, value) in [("forwarded", &forwarded), ("x-forwarded-for", &x_forwarded_for)] {
                if let Ok(value) = value.parse() {
                    headers.insert(name, value);
                }
            }
            let header = [ClientIpHeader::None, ClientIpHeader::XForwardedFor, ClientIpHeader::Forwarded][usize::from(named)];
            let client = client_address(peer, &headers, &proxies, header);
            if !trusted_peer {
                proptest::prop_assert_eq!(client, peer);
            } else if client != peer {
                // Only the named header's addresses.
                let text = match header {
                    ClientIpHeader::Forwarded => &forwarded,
                    _ => &x_forwarded_for,
                };
                proptest::prop_assert!(header != ClientIpHeader::None);
                let named: Vec<IpAddr> = text
                    .split([',', ';', ' '])
                    .map(|hop| {
                        let hop = hop.trim();
                        let hop = hop.split_once('=').map_or(hop, |(_, value)| value);
                        hop.trim_matches('"').to_owned()
                    })
                    .filter_map(|hop| parse_hop(&hop))
                    .collect();
                proptest::prop_assert!(named.contains(&client), "{}", client);
            }
        }
    }

    proptest::proptest! {
        /// Any query and form: parameters come from the query first, then the form; the
        /// `auth-token` header wins over `jwt`; a callback is either refused or a plain name.
        #[test]
        fn any_query_and_form(
            query in "[a-z=&%0-9A-F+.;_-]{0,80}",
            form in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            header_token in proptest::option::of("[A-Za-z0-9._-]{1,40}"),
        ) {
            let mut headers = HeaderMap::new();
            if let Some(token) = &header_token {
                headers.insert("auth-token", token.parse().unwrap());
            }
            let client: IpAddr = "127.0.0.1".parse().unwrap();
            let params = Params::parse(Some(&query), &headers, &form, client, "r");
            let from_query: Vec<(String, String)> =
                form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            for (key, value) in &from_query {
                if let Some((_, first)) = from_query.iter().find(|(k, _)| k == key) {
                    proptest::prop_assert_eq!(params.get(key), Some(first.as_str()), "{}", value);
                }
            }
            match &header_token {
                Some(token) => proptest::prop_assert_eq!(params.jwt(), Some(token.as_str())),
                None => proptest::prop_assert_eq!(params.jwt(), params.get("jwt")),
            }
        }
    }

    /// A JSONP name the rule allows, built from the rule's own pieces.
    fn allowed_callback() -> impl proptest::strategy::Strategy<Value = String> {
        "[A-Za-z_$][A-Za-z0-9_$.]{0,63}"
    }

    /// A name the rule refuses, each way it can be wrong.
    fn refused_callback() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::{Just, Strategy};
        proptest::prop_oneof![
            // Starts with a digit or a dot.
            "[0-9.][A-Za-z0-9_$.]{0,20}",
            // A character outside the rule somewhere.
            (
                "[A-Za-z_$][A-Za-z0-9_$.]{0,10}",
                "[^A-Za-z0-9_$.]",
                "[A-Za-z0-9_$.]{0,10}"
            )
                .prop_map(|(a, bad, b)| format!("{a}{bad}{b}")),
            // Too long by one or more.
            "[A-Za-z_$][A-Za-z0-9_$.]{64,80}",
            Just(String::new()),
        ]
    }

    proptest::proptest! {
        /// `callback=` as clients send it, among other parameters, URL-encoded: an allowed
        /// name wraps the answer, a refused one is a 400, whatever else the query holds.
        #[test]
        fn callback_names_are_accepted_or_refused_by_the_rule(
            allowed in allowed_callback(),
            refused in refused_callback(),
            use_allowed in proptest::bool::ANY,
            before in "[a-z]{1,8}=[a-z0-9]{0,8}",
            after in "[a-z]{1,8}=[a-z0-9]{0,8}",
        ) {
            let name = if use_allowed { &allowed } else { &refused };
            let encoded: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
            let query = format!("{before}&callback={encoded}&{after}&callback=second");
            let client: IpAddr = "127.0.0.1".parse().unwrap();
            let params = Params::parse(Some(&query), &HeaderMap::new(), &[], client, "r");
            // The first `callback` counts, as for every parameter.
            match params.callback() {
                Ok(Some(got)) => {
                    proptest::prop_assert!(use_allowed, "refused name accepted: {:?}", name);
                    proptest::prop_assert_eq!(got, name.as_str());
                }
                Ok(None) => proptest::prop_assert!(false, "the callback was not read: {}", query),
                Err(_) => proptest::prop_assert!(!use_allowed, "allowed name refused: {:?}", name),
            }
        }
    }

    #[test]
    fn callback_names() {
        for good in [
            "cb",
            "$",
            "_x",
            "jQuery123_456",
            "a.b.c",
            &format!("a{}", "b".repeat(63)),
        ] {
            assert!(is_callback_name(good), "{good}");
        }
        for bad in [
            "",
            "1cb",
            "a-b",
            "a(b)",
            "alert(1)//",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!is_callback_name(bad), "{bad}");
        }
    }
}
