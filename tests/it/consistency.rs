//! Every setting the program reads appears, with the same default, in
//! `.env.example`, the settings table of `docs/configuration.md` and the
//! Helm chart's values; the README's table of the most used settings gives
//! each its program default; the program's start-up budget agrees with the
//! chart's table of budgets.

use std::collections::BTreeMap;
use std::path::Path;

use clap::Parser;
use readygate::config::Cli;
use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every setting with its default; `""` for the settings without one
/// (unset unless given).
fn program() -> BTreeMap<String, String> {
    let mut settings: BTreeMap<_, _> = readygate::config::documented_settings()
        .into_iter()
        .collect();
    assert_eq!(settings.len(), 33, "{settings:?}");
    for variable in readygate::config::optional_settings() {
        settings.insert(variable, String::new());
    }
    settings
}

/// Compares `found` with the program's settings; `exceptions` are
/// deliberate differences (variable, value in `found`).
fn assert_agrees(what: &str, found: &BTreeMap<String, String>, exceptions: &[(&str, &str)]) {
    let program = program();
    for (variable, default) in &program {
        let want = exceptions
            .iter()
            .find(|(v, _)| v == variable)
            .map_or(default.as_str(), |(_, value)| value);
        assert_eq!(
            found.get(variable).map(String::as_str),
            Some(want),
            "{variable} in {what}"
        );
    }
    for variable in found.keys() {
        assert!(
            program.contains_key(variable),
            "{what} has {variable}, which the program does not read"
        );
    }
}

#[test]
fn env_example_lists_every_setting_with_its_default() {
    // A setting without a default is a commented line (an empty value
    // would be an error): `# REDIS_TLS_CA_CERT=/path/ca.pem`.
    let optional = readygate::config::optional_settings();
    let found: BTreeMap<String, String> = repo_file(".env.example")
        .lines()
        .filter_map(|l| match l.trim_start().strip_prefix('#') {
            None => l.split_once('=').map(|(k, v)| (k.trim(), v.trim())),
            Some(comment) => comment
                .split_once('=')
                .filter(|(k, _)| optional.iter().any(|o| o == k.trim()))
                .map(|(k, _)| (k.trim(), "")),
        })
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_agrees(".env.example", &found, &[]);
}

/// The settings rows of a markdown file's tables:
/// `| `VARIABLE` | description | `default` (or unset) | ...`.
fn settings_table(file: &str) -> BTreeMap<String, String> {
    repo_file(file)
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let variable = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let default = match *cells.get(3)? {
                "unset" => "",
                cell => cell.strip_prefix('`')?.strip_suffix('`')?,
            };
            variable
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_')
                .then(|| (variable.to_owned(), default.to_owned()))
        })
        .collect()
}

#[test]
fn the_configuration_table_lists_every_setting_with_its_default() {
    let found = settings_table("docs/configuration.md");
    assert_agrees("the settings table of docs/configuration.md", &found, &[]);
}

/// The README lists only the most used settings: each with the program's
/// default, and none the program does not read.
#[test]
fn the_readme_gives_the_most_used_settings_their_defaults() {
    let program = program();
    let found = settings_table("README.md");
    assert!(found.len() >= 10, "{found:?}");
    for (variable, default) in &found {
        assert_eq!(
            program.get(variable),
            Some(default),
            "{variable} in the README's table of the most used settings"
        );
    }
}

#[test]
fn the_chart_values_carry_every_setting_with_its_default() {
    let docs = YamlLoader::load_from_str(&repo_file("deploy/helm/readygate/values.yaml")).unwrap();
    let values = &docs[0];
    let mut found = BTreeMap::new();
    for section in ["config", "secret"] {
        let Yaml::Hash(map) = &values[section] else {
            panic!("values.yaml has no {section} map");
        };
        for (key, value) in map {
            let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
                continue;
            };
            if key.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                found.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    // In a pod the gateway must listen on every interface, and serve on
    // while its endpoint's removal propagates.
    assert_agrees(
        "deploy/helm/readygate/values.yaml",
        &found,
        &[("HOST", "0.0.0.0"), ("SHUTDOWN_DELAY_MS", "5000")],
    );
}

#[test]
fn the_chart_schema_types_every_setting() {
    let schema: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/helm/readygate/values.schema.json")).unwrap();
    for variable in program().keys() {
        let section = if variable.ends_with("_URL") {
            "secret"
        } else {
            "config"
        };
        assert!(
            schema["properties"][section]["properties"][variable].is_object(),
            "values.schema.json does not type {section}.{variable}"
        );
    }
}

/// `deploy/helm/retry-budgets.json`: for each row of settings, the largest
/// `worst_case_budget` of the dependencies in use is the row's budget. The
/// chart lint (`deploy/helm/lint_chart.py`) holds the chart's
/// `readygate.retryBudgetMs` to the same rows, so the program and the
/// startupProbe agree to the millisecond.
#[test]
fn the_start_up_budget_agrees_with_the_charts_table() {
    let table: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/helm/retry-budgets.json")).unwrap();
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 10, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        // Every setting passed explicitly, the row's over the defaults, so
        // that the environment of whoever runs the tests cannot interfere.
        let mut settings: BTreeMap<String, String> = program();
        // One WAIT_FOR entry's own settings, which the program reads from
        // the environment only.
        let mut per_entry = Vec::new();
        for (variable, value) in case["config"].as_object().unwrap() {
            let value = value.as_str().unwrap().to_owned();
            if !settings.contains_key(variable) && variable.starts_with("WAIT_FOR_") {
                per_entry.push((variable.clone(), value));
                continue;
            }
            assert!(
                settings.contains_key(variable),
                "{name}: unknown {variable}"
            );
            settings.insert(variable.clone(), value);
        }
        let mut argv = vec!["readygate".to_owned()];
        // The optional settings (no default) stay unset.
        for (variable, value) in settings.iter().filter(|(_, v)| !v.is_empty()) {
            argv.push(format!(
                "--{}={value}",
                variable.to_lowercase().replace('_', "-")
            ));
        }
        let mut raw = Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .settings;
        raw.wait_for_entries = per_entry;
        let parsed = raw.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut budget = parsed.database.retry.worst_case_budget();
        if let Some(redis) = parsed.cache.redis()
            && redis.required
        {
            budget = budget.max(redis.retry.worst_case_budget());
        }
        for wait in &parsed.wait_for {
            budget = budget.max(wait.policy.worst_case_budget());
        }
        assert_eq!(
            u64::try_from(budget.as_millis()).unwrap(),
            case["budget_ms"].as_u64().unwrap(),
            "{name}"
        );
    }
}
