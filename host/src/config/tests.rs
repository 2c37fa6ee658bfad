//! Configuration loading: layers, old names, every problem reported.

use super::*;
use figment::Jail;

#[test]
fn old_and_new_environment_names_and_toml_layer_in_order() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "auth.toml",
            r#"
                allowed_services = "a:one;b:two"
                plugin_timeout_ms = 100
                [plugins.a]
                greeting = "from toml"
                level = 1
            "#,
        )?;
        jail.set_env("AUTH_CONFIG", "auth.toml");
        jail.set_env("INSTALLED_EXTENSIONS", "ext:sample_extension;");
        jail.set_env("AUTH_PLUGINS__A__GREETING", "from env");
        jail.set_env("AUTH_PLUGIN_DIR", "/opt/plugins::/usr/lib/auth-host");
        jail.set_env("EXTERNAL_ADDRESS", "auth.example.com");
        jail.set_env("DATABASE_URL", "postgres://auth:pw@db/auth");
        jail.set_env(
            "AUTH_CORS_ORIGINS",
            "https://app.example.com;http://localhost:3000",
        );
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.allowed_services.to_string(), "a:one;b:two");
        assert_eq!(
            config.installed_extensions.to_string(),
            "ext:sample_extension"
        );
        assert_eq!(config.plugin_timeout_ms, 100);
        assert_eq!(
            config.plugin_dirs(),
            [
                PathBuf::from("/opt/plugins"),
                PathBuf::from("/usr/lib/auth-host")
            ]
        );
        assert_eq!(
            config.external_base().as_deref(),
            Some("https://auth.example.com")
        );
        assert_eq!(config.database_url(), "postgres://auth:pw@db/auth");
        assert!(
            !format!("{config:?}").contains("pw@"),
            "secrets stay out of Debug"
        );
        assert_eq!(config.cors_origins.0.len(), 2);
        assert_eq!(config.listen, defaults::LISTEN);
        assert_eq!(
            config.plugins["a"],
            serde_json::json!({"greeting": "from env", "level": 1})
        );
        Ok(())
    });
}

#[test]
fn the_example_configuration_loads() {
    Jail::expect_with(|_| {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/auth-host.toml");
        let config = Config::load(Some(&example)).map_err(|e| e.to_string())?;
        assert_eq!(config.installed_extensions.iter().count(), 1);
        assert!(config.admin_token.is_none());
        Ok(())
    });
}

#[test]
fn allowed_services_from_the_old_environment_name() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "ALLOWED_SERVICES",
            "example:sample_permission_provider;example2:sample_permission_provider",
        );
        let config = Config::load(None).map_err(|e| e.to_string())?;
        let aliases: Vec<_> = config
            .allowed_services
            .iter()
            .map(|e| e.alias.as_str())
            .collect();
        assert_eq!(aliases, ["example", "example2"]);
        Ok(())
    });
}

#[test]
fn every_problem_is_named_with_its_key() {
    Jail::expect_with(|jail| {
        jail.set_env("AUTH_PLUGIN_TIMEOUT_MS", "soon");
        let errors = Config::load(None).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert!(errors.0[0].contains("plugin_timeout_ms"), "{errors}");
        assert!(errors.0[0].contains("AUTH_PLUGIN_TIMEOUT_MS"), "{errors}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ALLOWED_SERVICES", "x:../../etc/evil");
        let errors = Config::load(None).unwrap_err();
        assert!(errors.to_string().contains("must be 1 to 64"), "{errors}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("AUTH_ADMIN_TOKEN", "hunter2");
        let errors = Config::load(None).unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("admin_token (AUTH_ADMIN_TOKEN): must be at least 32"),
            "{errors}"
        );
        assert!(!errors.to_string().contains("hunter2"), "{errors}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("AUTH_CONFIG", "missing.toml");
        let errors = Config::load(None).unwrap_err();
        assert!(
            errors.to_string().contains("missing.toml does not exist"),
            "{errors}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ALLOWED_SERVICES", "same:sample_permission_provider");
        jail.set_env("INSTALLED_EXTENSIONS", "same:sample_extension");
        let errors = Config::load(None).unwrap_err();
        assert!(
            errors.to_string().contains("alias `same` is named both"),
            "{errors}"
        );
        Ok(())
    });
}

#[test]
fn providers_from_the_old_names_and_from_auth_variables() {
    Jail::expect_with(|jail| {
        jail.set_env("GOOGLE_KEY", "g-id");
        jail.set_env("GOOGLE_SECRET", "g-secret");
        jail.set_env("GITHUB_KEY", "h-id");
        jail.set_env("GITHUB_SECRET", "h-secret");
        jail.set_env(
            "AUTH_PROVIDERS__GITHUB__API_URL",
            "https://github.corp.example/api/v3",
        );
        jail.set_env("AUTH_PROVIDERS__MYIDP__KIND", "oidc");
        jail.set_env(
            "AUTH_PROVIDERS__MYIDP__ISSUER",
            "https://sso.corp.example/realms/main",
        );
        jail.set_env("AUTH_PROVIDERS__MYIDP__CLIENT_ID", "m-id");
        jail.set_env("AUTH_PROVIDERS__MYIDP__CLIENT_SECRET", "m-secret");
        jail.set_env("AUTH_PROVIDERS__MYIDP__DISPLAY_NAME", "Corp SSO");
        jail.set_env("EXTERNAL_ADDRESS", "auth.corp.example");
        let config = Config::load(None).map_err(|e| e.to_string())?;
        let providers = config.login_providers().map_err(|e| e.join("; "))?;
        let by_name = |name: &str| providers.iter().find(|p| p.name == name).cloned();
        let google = by_name("google").ok_or("no google")?;
        assert_eq!(google.kind, LoginProviderKind::Google);
        assert_eq!(google.client_id, "g-id");
        assert_eq!(
            google.issuer.as_deref(),
            Some("https://accounts.google.com")
        );
        let github = by_name("github").ok_or("no github")?;
        assert_eq!(
            github.api_url.as_deref(),
            Some("https://github.corp.example/api/v3")
        );
        assert_eq!(
            github.auth_url.as_deref(),
            Some("https://github.com/login/oauth/authorize")
        );
        let corp = by_name("myidp").ok_or("no myidp")?;
        assert_eq!(corp.kind, LoginProviderKind::Oidc);
        assert_eq!(corp.display_name, "Corp SSO");
        assert_eq!(corp.scopes, ["openid", "email", "profile"]);
        assert!(
            !format!("{config:?}").contains("secret\""),
            "secrets stay out of Debug"
        );
        assert_eq!(config.redirect_origins(), ["https://auth.corp.example"]);
        Ok(())
    });
}

#[test]
fn provider_problems_are_named() {
    Jail::expect_with(|jail| {
        jail.set_env("GOOGLE_KEY", "only-the-key");
        jail.set_env("AUTH_PROVIDERS__CORP__KIND", "oidc");
        jail.set_env("AUTH_PROVIDERS__CORP__CLIENT_ID", "c");
        jail.set_env("AUTH_PROVIDERS__CORP__CLIENT_SECRET", "s");
        jail.set_env("AUTH_PROVIDERS__CORP__ISSUER", "http://sso.corp.example");
        let errors = Config::load(None).unwrap_err().to_string();
        assert!(
            errors.contains("providers.google: client_id and client_secret are both required (GOOGLE_KEY and GOOGLE_SECRET)"),
            "{errors}"
        );
        assert!(
            errors.contains("providers.corp: issuer: `http://sso.corp.example`: plain http is only allowed on a loopback address"),
            "{errors}"
        );
        assert!(
            errors.contains("external_address (EXTERNAL_ADDRESS): required"),
            "{errors}"
        );
        Ok(())
    });
}

#[test]
fn the_development_login_needs_a_loopback_external_address() {
    Jail::expect_with(|jail| {
        jail.set_env("AUTH_DEV_LOGIN", "true");
        jail.set_env("EXTERNAL_ADDRESS", "https://auth.example.com");
        let errors = Config::load(None).unwrap_err().to_string();
        assert!(
            errors.contains("dev_login (AUTH_DEV_LOGIN): only allowed"),
            "{errors}"
        );
        jail.set_env("EXTERNAL_ADDRESS", "http://127.0.0.1:8000");
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert!(config.dev_login);
        // A loopback address, but listening on every interface: anyone reaching the port
        // would log in as anyone.
        for listen in ["0.0.0.0:8000", "[::]:8000", "192.0.2.7:8000"] {
            jail.set_env("AUTH_LISTEN", listen);
            let errors = Config::load(None).unwrap_err().to_string();
            assert!(
                errors.contains("dev_login (AUTH_DEV_LOGIN): only allowed when listen (AUTH_LISTEN) is a loopback address"),
                "{listen}: {errors}"
            );
        }
        jail.set_env("AUTH_LISTEN", "[::1]:8000");
        assert!(Config::load(None).is_ok());
        Ok(())
    });
}

#[test]
fn a_file_that_does_not_parse_is_reported_once() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "broken.toml",
            "listen = \"127.0.0.1:8000\"\n[plugins\nx = 1\n",
        )?;
        jail.set_env("AUTH_CONFIG", "broken.toml");
        let errors = Config::load(None).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert!(errors.0[0].contains("broken.toml"), "{errors}");
        Ok(())
    });
}

#[test]
fn a_wildcard_origin_is_refused_with_a_clear_message() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "AUTH_ALLOWED_REDIRECTS",
            "https://*.example.com;https://app.example.com",
        );
        jail.set_env("AUTH_CORS_ORIGINS", "https://*.example.com");
        let errors = Config::load(None).unwrap_err();
        assert_eq!(errors.0.len(), 2, "{errors}");
        for key in ["allowed_redirects", "cors_origins"] {
            assert!(
                errors.to_string().contains(&format!(
                    "{key}: `https://*.example.com`: wildcards are not supported"
                )),
                "{errors}"
            );
        }
        Ok(())
    });
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any text in any setting: a configuration or one message per problem, each naming a
    /// key; never a panic.
    #[test]
    fn any_values_load_or_are_refused_by_key(
        values in proptest::collection::vec("\\PC{0,40}", 12),
    ) {
        let keys = [
            "listen", "allowed_services", "installed_extensions", "plugin_timeout_ms",
            "cors_origins", "allowed_redirects", "trusted_proxies", "external_address",
            "client_token_algorithm", "max_body_bytes", "dev_login", "admin_token",
        ];
        let settings: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .zip(&values)
            .map(|(key, value)| ((*key).to_owned(), serde_json::Value::from(value.clone())))
            .collect();
        let figment = Figment::from(figment::providers::Serialized::defaults(settings));
        if let Err(errors) = Config::from_figment(figment) {
            proptest::prop_assert!(!errors.0.is_empty());
            for problem in &errors.0 {
                let named = keys.iter().any(|key| problem.contains(key))
                    || problem.contains("providers")
                    || problem.contains("alias");
                proptest::prop_assert!(named, "{}", problem);
            }
        }
    }
}

#[test]
fn the_private_key_text_is_kept_exactly_as_given() {
    // The old service derived its HMAC key from these exact bytes, trailing newline included.
    Jail::expect_with(|jail| {
        jail.set_env("PRIVATE_KEY", "-----BEGIN X-----\nabc\n-----END X-----\n");
        jail.set_env("PUBLIC_KEY", "p");
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(
            config.private_key.as_ref().map(Secret::expose),
            Some("-----BEGIN X-----\nabc\n-----END X-----\n")
        );
        Ok(())
    });
}

/// A configuration from settings as JSON (what a TOML file or the environment would give).
fn from_settings(settings: serde_json::Value) -> Result<Config, ConfigErrors> {
    Config::from_figment(Figment::from(figment::providers::Serialized::defaults(
        settings,
    )))
}

#[test]
fn where_the_signing_keys_come_from_and_what_rotation_needs() {
    let config = from_settings;
    let secret = "s".repeat(MIN_SECRET_CHARS_FOR_TESTS);
    let postgres = "postgres://auth@db/auth";
    let sqlite = config(serde_json::json!({})).unwrap();
    assert_eq!(sqlite.key_source(), Some(KeySource::DataDirectory));
    // PostgreSQL with nothing said: no key source (serve refuses; migrate still runs).
    let bare = config(serde_json::json!({"database_url": postgres})).unwrap();
    assert_eq!(bare.key_source(), None);
    let shared = config(
        serde_json::json!({"database_url": postgres, "key_secrets": format!("{secret};{secret}x")}),
    )
    .unwrap();
    assert_eq!(shared.key_source(), Some(KeySource::Database));
    assert_eq!(shared.key_secrets().len(), 2);
    let env_keys = config(serde_json::json!({
        "database_url": postgres, "key_secrets": secret, "private_key": "a", "public_key": "b"
    }))
    .unwrap();
    assert!(matches!(
        env_keys.key_source(),
        Some(KeySource::Environment { private, public: "b" }) if private.expose() == "a"
    ));

    let problems = |settings| config(settings).unwrap_err().0.join("\n");
    let short = problems(serde_json::json!({"key_secrets": "short"}));
    assert!(
        short.contains("key_secrets") && short.contains("shorter"),
        "{short}"
    );
    let no_database = problems(serde_json::json!({"key_rotation_secs": 86400}));
    assert!(
        no_database.contains("rotation needs the keys in the database"),
        "{no_database}"
    );
    let too_fast = problems(serde_json::json!({"key_secrets": secret, "key_rotation_secs": 60}));
    assert!(too_fast.contains("would publish about"), "{too_fast}");
    let fine = config(serde_json::json!({"key_secrets": secret, "key_rotation_secs": 86400}));
    assert!(fine.is_ok(), "{fine:?}");
    let es256 =
        problems(serde_json::json!({"key_secrets": secret, "client_token_algorithm": "ES256"}));
    assert!(es256.contains("client_token_private_key"), "{es256}");
    let eddsa =
        problems(serde_json::json!({"key_secrets": secret, "permission_token_algorithm": "EdDSA"}));
    assert!(eddsa.contains("permission_token_private_key"), "{eddsa}");
    assert!(!eddsa.contains("client_token_private_key"), "{eddsa}");
    // Secrets never show in the configuration's debug form.
    assert!(!format!("{shared:?}").contains(&secret));
}

const MIN_SECRET_CHARS_FOR_TESTS: usize = crate::tokens::MIN_SECRET_CHARS;

#[test]
fn trusted_proxies_and_the_client_ip_header_come_together() {
    let load = from_settings;
    let alone = load(serde_json::json!({"trusted_proxies": "10.0.0.1"})).unwrap_err();
    assert!(alone.to_string().contains("client_ip_header"), "{alone}");
    let header_alone = load(serde_json::json!({"client_ip_header": "forwarded"})).unwrap_err();
    assert!(
        header_alone.to_string().contains("trusted_proxies"),
        "{header_alone}"
    );
    let unknown =
        load(serde_json::json!({"trusted_proxies": "10.0.0.1", "client_ip_header": "x-real-ip"}))
            .unwrap_err();
    assert!(
        unknown.to_string().contains("client_ip_header"),
        "{unknown}"
    );
    let both = load(
        serde_json::json!({"trusted_proxies": "10.0.0.1", "client_ip_header": "x-forwarded-for"}),
    )
    .unwrap();
    assert_eq!(both.client_ip_header, super::ClientIpHeader::XForwardedFor);
}

#[test]
fn durations_beyond_their_bounds_are_refused_by_key() {
    let load = from_settings;
    let errors = load(serde_json::json!({
        "client_token_lifetime_secs": u64::MAX,
        "permission_token_lifetime_secs": 1u64 << 63,
        "token_cache_ms": u64::MAX,
        "plugin_timeout_ms": 3_600_000,
        "shutdown_grace_ms": u64::MAX,
    }))
    .unwrap_err()
    .to_string();
    for key in [
        "client_token_lifetime_secs: 18446744073709551615 is too long; at most 31622400 s",
        "permission_token_lifetime_secs: 9223372036854775808 is too long",
        "token_cache_ms",
        "plugin_timeout_ms: 3600000 is too long; at most 600000 ms",
        "shutdown_grace_ms",
    ] {
        assert!(errors.contains(key), "{key}: {errors}");
    }
    assert!(load(serde_json::json!({"client_token_lifetime_secs": 366 * 24 * 3600})).is_ok());
}

#[test]
fn permission_tokens_are_reused_for_at_most_half_their_lifetime() {
    let load = from_settings;
    let too_long = load(serde_json::json!({
        "permission_token_lifetime_secs": 60, "permission_token_reuse_secs": 31
    }))
    .unwrap_err();
    assert!(
        too_long.to_string().contains("permission_token_reuse_secs"),
        "{too_long}"
    );
    let half = load(serde_json::json!({
        "permission_token_lifetime_secs": 60, "permission_token_reuse_secs": 30
    }))
    .unwrap();
    assert_eq!(half.permission_token_reuse_secs, 30);
    assert_eq!(
        load(serde_json::json!({}))
            .unwrap()
            .permission_token_reuse_secs,
        0
    );
}

#[test]
fn tracing_from_the_standard_otel_variables_and_from_the_file() {
    Jail::expect_with(|jail| {
        // Off by default.
        let off = Config::load(None).unwrap();
        assert_eq!(off.tracing.traces_url(), None);
        jail.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/");
        jail.set_env("OTEL_SERVICE_NAME", "auth-eu");
        jail.set_env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio");
        jail.set_env("OTEL_TRACES_SAMPLER_ARG", "0.25");
        let config = Config::load(None).unwrap();
        assert_eq!(
            config.tracing.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(config.tracing.service_name(), "auth-eu");
        assert_eq!(config.tracing.sampler, SamplerKind::ParentbasedTraceIdRatio);
        assert_eq!(config.tracing.ratio(), 0.25);
        // The signal's own URL is taken as it is.
        jail.set_env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://otel.example/x",
        );
        let config = Config::load(None).unwrap();
        assert_eq!(
            config.tracing.traces_url().as_deref(),
            Some("https://otel.example/x")
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file(
            "auth-host.toml",
            "[tracing]\nendpoint = \"http://127.0.0.1:4318\"\nsampler = \"always_off\"\n",
        )?;
        let config = Config::load(Some(Path::new("auth-host.toml"))).unwrap();
        assert_eq!(
            config.tracing.traces_url().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(config.tracing.sampler, SamplerKind::AlwaysOff);
        assert_eq!(config.tracing.service_name(), "auth-host");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318");
        jail.set_env("OTEL_TRACES_SAMPLER_ARG", "2");
        let errors = Config::load(None).unwrap_err().to_string();
        for expected in [
            "tracing.endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): `collector:4318` is not an http:// or https:// URL",
            "tracing.sampler_arg (OTEL_TRACES_SAMPLER_ARG): 2 is not a ratio from 0 to 1",
        ] {
            assert!(errors.contains(expected), "{expected} in {errors}");
        }
        jail.set_env("OTEL_TRACES_SAMPLER", "sometimes");
        let errors = Config::load(None).unwrap_err().to_string();
        let expected =
            "tracing.sampler (from OTEL_TRACES_SAMPLER): unknown variant: found `sometimes`";
        assert!(errors.contains(expected), "{expected} in {errors}");
        Ok(())
    });
}

/// The README allows a bare uid for `plugin_user`; from the environment it is a number.
#[test]
fn a_bare_uid_is_a_plugin_user() {
    Jail::expect_with(|jail| {
        jail.set_env("AUTH_PLUGIN_USER", "65534");
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.plugin_user_ids(), Some((65534, 65534)));
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("AUTH_PLUGIN_USER", "65534:65533");
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.plugin_user_ids(), Some((65534, 65533)));
        Ok(())
    });
}

/// Settings from the environment for an alias whose name has capitals would be ignored (the
/// environment's names are lower-cased): start-up stops, naming both spellings.
#[test]
fn settings_for_an_alias_spelt_in_another_case_stop_the_start() {
    Jail::expect_with(|jail| {
        jail.set_env("ALLOWED_SERVICES", "Wiki:sample_permission_provider");
        jail.set_env("AUTH_PLUGINS__WIKI__SANDBOX", "off");
        let errors = Config::load(None).unwrap_err().to_string();
        assert!(
            errors.contains("plugins.wiki: no alias `wiki`, but `Wiki`"),
            "{errors}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ALLOWED_SERVICES", "wiki:sample_permission_provider");
        jail.set_env("AUTH_PLUGINS__WIKI__SANDBOX", "off");
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.plugins["wiki"]["sandbox"], "off");
        Ok(())
    });
}
