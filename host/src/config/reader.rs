//! Reading settings one key at a time, so that every bad key is reported with where it was
//! set, not only the first.

use figment::Figment;
use serde::de::DeserializeOwned;

pub(super) struct KeyReader<'a> {
    figment: &'a Figment,
    problems: Vec<String>,
}

impl<'a> KeyReader<'a> {
    pub(super) fn new(figment: &'a Figment) -> Self {
        KeyReader {
            figment,
            problems: Vec::new(),
        }
    }

    /// The key's value; `None` when it is not set or (with a problem noted) invalid.
    pub(super) fn get<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        match self.figment.extract_inner::<T>(key) {
            Ok(value) => Some(value),
            Err(error) if error.missing() => None,
            Err(error) => {
                for mut problem in error {
                    // Errors raised by our own parsing (e.g. `[alias:]name` lists) come
                    // without their key and source: add them.
                    let parts: Vec<String> = key.split('.').map(str::to_owned).collect();
                    if problem.path.is_empty() {
                        problem.path = parts;
                    } else if problem.path.len() > parts.len()
                        && problem.path.ends_with(&parts)
                        && !problem.path.starts_with(&parts)
                    {
                        // figment appends the key it was asked for after the inner path
                        // (`sampler.tracing`): put it first.
                        problem.path.rotate_right(parts.len());
                    }
                    if problem.metadata.is_none() {
                        problem.metadata = self.figment.find_metadata(key).cloned();
                    }
                    self.problems.push(describe(problem));
                }
                None
            }
        }
    }

    pub(super) fn into_problems(self) -> Vec<String> {
        self.problems
    }
}

/// "key (where it was set): what is wrong, what was expected"; without a key (a file that
/// does not parse), "where: what is wrong".
pub(super) fn describe(error: figment::Error) -> String {
    let key = error.path.join(".");
    let variable = error.path.join("__").to_uppercase();
    let place = match &error.metadata {
        Some(metadata) => match &metadata.source {
            Some(figment::Source::File(file)) => format!(" (in {})", file.display()),
            _ if metadata.name.starts_with("`AUTH_`") => format!(" (from AUTH_{variable})"),
            _ if metadata.name.contains("environment") => match super::env_name_of(&key) {
                Some(name) => format!(" (from {name})"),
                None => format!(" (from {variable})"),
            },
            _ => format!(" ({})", metadata.name),
        },
        None => String::new(),
    };
    if key.is_empty() {
        return format!("configuration{place}: {}", error.kind);
    }
    format!("{key}{place}: {}", error.kind)
}
