//! User records and their rules: ids, usernames, dates as the old service wrote them, and
//! the record plugins are shown. Storage keeps them; the service applies these rules.

use auth_host_plugin_api::UserInfo;
use chrono::NaiveDateTime;
use md5::Digest as _;

/// A user, as stored (the old service's `users` columns plus `username_set_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// md5 hex of the email.
    pub id: String,
    pub provider_id: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
    pub join_date: Option<NaiveDateTime>,
    /// When the user chose their username; `None` while it is the derived one.
    pub username_set_at: Option<NaiveDateTime>,
}

/// How many suffixed usernames a first login tries before giving up.
const USERNAME_SUFFIXES: u32 = 1000;

/// Usernames are 2 to 39 characters.
const MIN_USERNAME: usize = 2;
const MAX_USERNAME: usize = 39;

/// A derived base leaves room for the longest suffix (`999`).
const MAX_USERNAME_BASE: usize = MAX_USERNAME - 3;

/// The base of a username when the email's local part has nothing usable.
pub const FALLBACK_USERNAME: &str = "user";

fn md5_hex(text: &str) -> String {
    format!("{:x}", md5::Md5::digest(text.as_bytes()))
}

/// A user's id: md5 hex of the email, as the old service made it.
pub fn user_id_of(email: &str) -> String {
    md5_hex(email)
}

/// The Gravatar hash of an email (`/auth/get_profile`): md5 hex, as the old service gave it.
pub fn gravatar(email: &str) -> String {
    md5_hex(email)
}

/// A new user record as a first login makes it: id from the email, joined now, with the
/// first choice of username (see [`username_candidates`] for what is stored).
pub fn new_user(
    email: &str,
    provider_id: Option<String>,
    provider_login: Option<&str>,
    name: Option<String>,
    avatar_url: Option<String>,
) -> User {
    User {
        id: user_id_of(email),
        provider_id,
        username: Some(first_username(email, provider_login)),
        name,
        email: Some(email.to_owned()),
        avatar_url,
        join_date: Some(chrono::Utc::now().naive_utc()),
        username_set_at: None,
    }
}

/// The first choice of username: the provider's own login name (GitHub's), else the local
/// part of the email, lower-cased — within the rules of [`validate_username`], so that the
/// base and each suffixed candidate are valid: other characters are dropped, the edges are
/// trimmed to a letter or digit, the length is capped (leaving room for a suffix), and what
/// is left too short becomes [`FALLBACK_USERNAME`].
pub fn first_username(email: &str, provider_login: Option<&str>) -> String {
    let wanted = provider_login
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default())
        .to_lowercase();
    let kept: String = wanted
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(MAX_USERNAME_BASE)
        .collect();
    let base = kept.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if base.len() < MIN_USERNAME {
        FALLBACK_USERNAME.to_owned()
    } else {
        base.to_owned()
    }
}

/// The usernames a new user may get, in order: `base`, `base1`, `base2`, … (the old
/// service's rule); storage takes the first free one.
pub fn username_candidates(base: &str) -> impl Iterator<Item = String> + '_ {
    (0..USERNAME_SUFFIXES).map(move |n| match n {
        0 => base.to_owned(),
        n => format!("{base}{n}"),
    })
}

/// Usernames: 2 to 39 characters, ASCII letters, digits, `-`, `_`, `.`, starting and ending
/// with a letter or digit.
pub fn validate_username(username: &str) -> Result<(), String> {
    const RULE: &str = "use 2 to 39 characters: letters, digits, '-', '_' or '.', \
                        starting and ending with a letter or digit";
    let length = username.chars().count();
    if !(MIN_USERNAME..=MAX_USERNAME).contains(&length) {
        return Err(RULE.into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let edges_ok = username.starts_with(|c: char| c.is_ascii_alphanumeric())
        && username.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !username.chars().all(allowed) || !edges_ok {
        return Err(RULE.into());
    }
    Ok(())
}

/// The plugin-facing record of a user.
pub fn user_info(user: &User) -> UserInfo {
    UserInfo {
        id: user.id.clone(),
        provider_id: user.provider_id.clone(),
        username: user.username.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        avatar_url: user.avatar_url.clone(),
        join_date: user.join_date.map(|d| iso8601(&d)),
    }
}

/// ISO 8601 as the old service wrote it (Python's `isoformat()`).
pub fn iso8601(date: &NaiveDateTime) -> String {
    use chrono::Timelike;
    if date.nanosecond() == 0 {
        date.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        date.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        for good in ["ab", "alice", "a.b-c_d", "User42", &"x".repeat(39)] {
            assert_eq!(validate_username(good), Ok(()), "{good}");
        }
        for bad in [
            "a",
            "",
            "-alice",
            "alice.",
            "al ice",
            "ali/ce",
            "élise",
            &"x".repeat(40),
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn first_usernames_and_their_suffixes() {
        assert_eq!(first_username("Ada.L@example.com", None), "ada.l");
        assert_eq!(first_username("ada@example.com", Some("AdaGH")), "adagh");
        let candidates: Vec<String> = username_candidates("ada").take(3).collect();
        assert_eq!(candidates, ["ada", "ada1", "ada2"]);
        assert_eq!(username_candidates("ada").count(), 1000);
    }

    #[test]
    fn derived_usernames_and_every_suffix_follow_the_username_rules() {
        for (email, base) in [
            (
                "<img src=x onerror=alert(1)>@example.com",
                "imgsrcxonerroralert1",
            ),
            ("''@example.com", FALLBACK_USERNAME),
            ("@example.com", FALLBACK_USERNAME),
            ("../../etc@example.com", "etc"),
            ("élise@example.com", "lise"),
            ("a@example.com", FALLBACK_USERNAME),
            ("-_.x.-@example.com", FALLBACK_USERNAME),
            ("John.Doe@example.com", "john.doe"),
            (&format!("{}@example.com", "x".repeat(120)), &"x".repeat(36)),
        ] {
            let derived = first_username(email, None);
            assert_eq!(derived, base, "{email}");
            for candidate in username_candidates(&derived) {
                assert_eq!(validate_username(&candidate), Ok(()), "{candidate}");
            }
        }
        assert_eq!(
            first_username("a@example.com", Some("Mona-Lisa")),
            "mona-lisa"
        );
    }

    proptest::proptest! {
        /// Any email (or provider login) gives a valid base, and every suffix stays valid.
        #[test]
        fn any_email_gives_valid_usernames(local in "\\PC{0,150}", login in proptest::option::of("\\PC{0,60}")) {
            let base = first_username(&format!("{local}@example.com"), login.as_deref());
            for candidate in username_candidates(&base).step_by(97) {
                proptest::prop_assert_eq!(validate_username(&candidate), Ok(()), "{}", candidate);
            }
        }
    }

    #[test]
    fn dates_are_written_as_python_isoformat_did() {
        let whole = chrono::NaiveDate::from_ymd_opt(2019, 5, 1)
            .unwrap()
            .and_hms_opt(12, 34, 56)
            .unwrap();
        assert_eq!(iso8601(&whole), "2019-05-01T12:34:56");
        let fraction = whole + chrono::Duration::microseconds(1500);
        assert_eq!(iso8601(&fraction), "2019-05-01T12:34:56.001500");
    }
}
