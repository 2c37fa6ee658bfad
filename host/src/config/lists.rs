//! List settings: `;`-separated text (as the old service's environment variables are) or a
//! TOML array. [`List`] is a plain list of items; [`EntryList`] is `ALLOWED_SERVICES` /
//! `INSTALLED_EXTENSIONS`, `[alias:]name` items.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// The items of `;`-separated text or a TOML list, trimmed; empty items are ignored, as the
/// old service did.
fn list_items<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Items(Vec<String>),
    }
    let items = match Raw::deserialize(deserializer)? {
        Raw::Text(text) => text.split(';').map(str::to_owned).collect(),
        Raw::Items(items) => items,
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

/// A list of trimmed, non-empty items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        list_items(deserializer).map(List)
    }
}

/// One `[alias:]name` item: the plugin file `lib<name>.so`, known to clients as `alias`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEntry {
    pub alias: String,
    pub name: String,
}

/// An ordered list of entries, with no alias twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryList(pub Vec<PluginEntry>);

impl EntryList {
    pub fn iter(&self) -> std::slice::Iter<'_, PluginEntry> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Plugin names become file names, so they are kept to characters that cannot leave the
/// plugin directory. Aliases appear in URLs and logs; the same rule keeps them readable.
fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !text.starts_with('.')
}

impl std::str::FromStr for EntryList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::from_items(text.split(';'))
    }
}

impl EntryList {
    fn from_items<'a>(items: impl Iterator<Item = &'a str>) -> Result<Self, String> {
        let mut entries: Vec<PluginEntry> = Vec::new();
        // Empty items are ignored, as the old service did.
        for item in items.map(str::trim).filter(|item| !item.is_empty()) {
            let (alias, name) = match item.split_once(':') {
                Some((alias, name)) => (alias.trim(), name.trim()),
                None => (item, item),
            };
            for (what, value) in [("alias", alias), ("plugin name", name)] {
                if !is_identifier(value) {
                    return Err(format!(
                        "`{item}`: {what} `{value}` must be 1 to 64 letters, digits, `_`, `-` or `.`, not starting with `.`"
                    ));
                }
            }
            if entries.iter().any(|e| e.alias == alias) {
                return Err(format!("alias `{alias}` is named twice"));
            }
            entries.push(PluginEntry {
                alias: alias.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(EntryList(entries))
    }
}

impl fmt::Display for EntryList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            if entry.alias == entry.name {
                f.write_str(&entry.name)?;
            } else {
                write!(f, "{}:{}", entry.alias, entry.name)?;
            }
        }
        Ok(())
    }
}

/// Accepts the compatible `"a:b;c"` string, or a TOML array of `"[alias:]name"` items.
impl<'de> Deserialize<'de> for EntryList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = list_items(deserializer)?;
        EntryList::from_items(items.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String)> {
        let list: EntryList = text.parse().unwrap();
        list.0.into_iter().map(|e| (e.alias, e.name)).collect()
    }

    #[test]
    fn aliases_default_to_the_plugin_name_and_empty_items_are_ignored() {
        assert_eq!(
            entries("example:sample_permission_provider;;other; "),
            vec![
                ("example".into(), "sample_permission_provider".into()),
                ("other".into(), "other".into())
            ]
        );
        assert!(entries("").is_empty());
        assert!(entries(";;").is_empty());
    }

    #[test]
    fn names_that_could_leave_the_plugin_directory_are_refused() {
        for bad in [
            "x:../evil",
            "x:/etc/evil",
            "x:a/b",
            ".hidden",
            "x:",
            ":x",
            "a b",
        ] {
            let error = bad.parse::<EntryList>().unwrap_err();
            assert!(error.contains("must be 1 to 64"), "{bad}: {error}");
        }
    }

    #[test]
    fn an_alias_named_twice_is_refused() {
        let error = "a:one;a:two".parse::<EntryList>().unwrap_err();
        assert_eq!(error, "alias `a` is named twice");
    }

    #[test]
    fn display_round_trips() {
        let text = "example:sample;other";
        assert_eq!(text.parse::<EntryList>().unwrap().to_string(), text);
    }
}
