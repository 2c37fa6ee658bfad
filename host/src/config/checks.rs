//! The checks of values that each parsed on their own but may not fit together (both keys
//! or neither, loopback rules, origins, plugin tables…).

use super::*;

impl Config {
    /// What is wrong with values that each parsed on their own.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.private_key.is_some() != self.public_key.is_some() {
            problems.push(
                "private_key / public_key (PRIVATE_KEY, PUBLIC_KEY): set both, or neither to \
                 use keys kept in the database (key_secrets) or the data directory"
                    .to_owned(),
            );
        }
        for (key, value) in [
            (
                "client_token_lifetime_secs",
                self.client_token_lifetime_secs,
            ),
            (
                "permission_token_lifetime_secs",
                self.permission_token_lifetime_secs,
            ),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_body_bytes", self.max_body_bytes as u64),
            (
                "database_max_connections",
                u64::from(self.database_max_connections),
            ),
            ("plugin_timeout_ms", self.plugin_timeout_ms),
            ("maintenance_interval_secs", self.maintenance_interval_secs),
            ("audit_retention_days", self.audit_retention_days),
            ("plugin_max_in_flight", self.plugin_max_in_flight as u64),
            (
                "max_unfinished_logins_per_client",
                self.max_unfinished_logins_per_client as u64,
            ),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        // Upper bounds: beyond them a duration is a mistake, and sums with the clock would
        // overflow (an `exp` before its `iat`, or past what a JWT consumer reads).
        const DAY_SECS: u64 = 24 * 3600;
        const HOUR_MS: u64 = 3600 * 1000;
        for (key, value, max, unit) in [
            (
                "client_token_lifetime_secs",
                self.client_token_lifetime_secs,
                366 * DAY_SECS,
                "s (366 days)",
            ),
            (
                "permission_token_lifetime_secs",
                self.permission_token_lifetime_secs,
                366 * DAY_SECS,
                "s (366 days)",
            ),
            (
                "key_rotation_secs",
                self.key_rotation_secs,
                366 * DAY_SECS,
                "s (366 days)",
            ),
            (
                "maintenance_interval_secs",
                self.maintenance_interval_secs,
                DAY_SECS,
                "s (a day)",
            ),
            (
                "audit_retention_days",
                self.audit_retention_days,
                3660,
                " days (ten years)",
            ),
            (
                "token_cache_ms",
                self.token_cache_ms,
                HOUR_MS,
                "ms (an hour)",
            ),
            (
                "request_timeout_ms",
                self.request_timeout_ms,
                HOUR_MS,
                "ms (an hour)",
            ),
            (
                "plugin_timeout_ms",
                self.plugin_timeout_ms,
                10 * 60 * 1000,
                "ms (10 minutes)",
            ),
            (
                "shutdown_delay_ms",
                self.shutdown_delay_ms,
                HOUR_MS,
                "ms (an hour)",
            ),
            (
                "shutdown_grace_ms",
                self.shutdown_grace_ms,
                HOUR_MS,
                "ms (an hour)",
            ),
        ] {
            if value > max {
                problems.push(format!("{key}: {value} is too long; at most {max} {unit}"));
            }
        }
        if self.permission_token_reuse_secs > self.permission_token_lifetime_secs / 2 {
            problems.push(format!(
                "permission_token_reuse_secs (AUTH_PERMISSION_TOKEN_REUSE_SECS): {} is more \
                 than half of permission_token_lifetime_secs ({}); a reused token must keep at \
                 least half its lifetime",
                self.permission_token_reuse_secs, self.permission_token_lifetime_secs
            ));
        }
        problems.extend(self.key_problems());
        problems.extend(self.tracing.problems());
        if let Some(address) = &self.external_address
            && let Err(problem) = normalize_external_address(address)
        {
            problems.push(format!("external_address (EXTERNAL_ADDRESS): {problem}"));
        }
        if let Some(token) = &self.admin_token
            && token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            problems.push(format!(
                "admin_token (AUTH_ADMIN_TOKEN): must be at least {MIN_ADMIN_TOKEN_CHARS} \
                 characters (e.g. `openssl rand -hex 32`)"
            ));
        }
        for (key, origins) in [
            ("cors_origins", &self.cors_origins),
            ("allowed_redirects", &self.allowed_redirects),
        ] {
            for origin in &origins.0 {
                if let Err(problem) = normalize_origin(origin) {
                    problems.push(format!("{key}: `{origin}`: {problem}"));
                }
            }
        }
        for proxy in &self.trusted_proxies.0 {
            if let Err(problem) = IpRange::parse(proxy) {
                problems.push(format!("trusted_proxies: {problem}"));
            }
        }
        // Either setting alone believes nothing, or the wrong thing: say so rather than
        // count every client as the balancer.
        match (self.trusted_proxies.0.is_empty(), self.client_ip_header) {
            (false, ClientIpHeader::None) => problems.push(
                "client_ip_header (AUTH_CLIENT_IP_HEADER): trusted_proxies is set, so name the \
                 one header those proxies set: `x-forwarded-for` or `forwarded` (and have them \
                 remove the other)"
                    .into(),
            ),
            (true, ClientIpHeader::XForwardedFor | ClientIpHeader::Forwarded) => problems.push(
                "trusted_proxies (AUTH_TRUSTED_PROXIES): client_ip_header is set, so list the \
                 proxies (addresses or CIDR blocks) whose header is believed"
                    .into(),
            ),
            _ => {}
        }
        if let Err(mut provider_problems) = self.login_providers() {
            problems.append(&mut provider_problems);
        }
        // The development login hands out a token for any email: only this machine may
        // reach it, by its address and by where it listens.
        if self.dev_login {
            match self.external_base() {
                Some(base) if is_loopback_url(&base) => {}
                _ => problems.push(
                    "dev_login (AUTH_DEV_LOGIN): only allowed when external_address \
                     (EXTERNAL_ADDRESS) is a loopback address such as http://127.0.0.1:8000"
                        .to_owned(),
                ),
            }
            if !self.listen.ip().is_loopback() {
                problems.push(format!(
                    "dev_login (AUTH_DEV_LOGIN): only allowed when listen (AUTH_LISTEN) is a \
                     loopback address such as 127.0.0.1:8000, not {}",
                    self.listen
                ));
            }
        }
        for (alias, settings) in &self.plugins {
            if !settings.is_object() {
                problems.push(format!(
                    "plugins.{alias}: must be a table of settings, found {settings}"
                ));
            }
            if let Some(isolation) = settings.get(ISOLATION_KEY)
                && serde_json::from_value::<Isolation>(isolation.clone()).is_err()
            {
                problems.push(format!(
                    "plugins.{alias}.isolation: expected `none` or `process`, found {isolation}"
                ));
            }
            if let Some(sandbox) = settings.get(SANDBOX_KEY)
                && serde_json::from_value::<SandboxMode>(sandbox.clone()).is_err()
            {
                problems.push(format!(
                    "plugins.{alias}.sandbox: expected `strict`, `available` or `off`, found \
                     {sandbox}"
                ));
            }
            if let Some(paths) = settings.get(READ_PATHS_KEY) {
                let absolute = serde_json::from_value::<Vec<PathBuf>>(paths.clone())
                    .is_ok_and(|paths| paths.iter().all(|p| p.is_absolute()));
                if !absolute {
                    problems.push(format!(
                        "plugins.{alias}.read_paths: expected a list of absolute paths, found \
                         {paths}"
                    ));
                }
            }
            if let Some(network) = settings.get(NETWORK_KEY)
                && !network.is_boolean()
            {
                problems.push(format!(
                    "plugins.{alias}.network: expected true or false, found {network}"
                ));
            }
        }
        // `AUTH_PLUGINS__WIKI__SANDBOX` is read as `plugins.wiki` (environment names are
        // lower-cased): for an alias written `Wiki` it would be ignored, its sandbox setting
        // among them.
        let aliases: Vec<&str> = self
            .allowed_services
            .iter()
            .chain(self.installed_extensions.iter())
            .map(|entry| entry.alias.as_str())
            .collect();
        for table in self.plugins.keys() {
            if aliases.contains(&table.as_str()) {
                continue;
            }
            if let Some(alias) = aliases.iter().find(|a| a.eq_ignore_ascii_case(table)) {
                problems.push(format!(
                    "plugins.{table}: no alias `{table}`, but `{alias}`; aliases are matched \
                     exactly, and environment names (AUTH_PLUGINS__…) are read in lower case: \
                     name the alias `{table}` or write its settings as [plugins.{alias}] in the \
                     configuration file"
                ));
            }
        }
        if let Some(user) = &self.plugin_user
            && let Err(problem) = resolve_user(user)
        {
            problems.push(format!("plugin_user (AUTH_PLUGIN_USER): {problem}"));
        }
        for extension in self.installed_extensions.iter() {
            if self
                .allowed_services
                .iter()
                .any(|s| s.alias == extension.alias)
            {
                problems.push(format!(
                    "alias `{}` is named both in ALLOWED_SERVICES and INSTALLED_EXTENSIONS; \
                     give one of them another alias, so that each has its own [plugins.<alias>] settings",
                    extension.alias
                ));
            }
        }
        problems
    }
}

impl Config {
    /// `plugin_user` as uid and gid (checked at start-up).
    pub fn plugin_user_ids(&self) -> Option<(u32, u32)> {
        self.plugin_user
            .as_deref()
            .and_then(|u| resolve_user(u).ok())
    }
}

/// `name`, `uid` or `uid:gid` → uid and gid (a name's own group; a bare uid's group is the
/// same number).
fn resolve_user(user: &str) -> Result<(u32, u32), String> {
    let numbers = match user.split_once(':') {
        Some((uid, gid)) => uid.parse().ok().zip(gid.parse().ok()),
        None => user.parse().ok().map(|uid| (uid, uid)),
    };
    if let Some(ids) = numbers {
        return Ok(ids);
    }
    let name = std::ffi::CString::new(user).map_err(|_| format!("`{user}`: not a user name"))?;
    let mut entry: libc::passwd = unsafe_zeroed_passwd();
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes the entry into `entry` and its strings into `buffer`, both
    // alive and of the sizes given, and sets `found` to `&entry` or null.
    let status = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() {
        return Err(format!(
            "no user `{user}` on this system (give a name, a uid or uid:gid)"
        ));
    }
    Ok((entry.pw_uid, entry.pw_gid))
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: `passwd` is plain data (integers and pointers); all-zero is a valid value that
    // getpwnam_r overwrites.
    unsafe { std::mem::zeroed() }
}
