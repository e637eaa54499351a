//! The whole settings validation from a map of variables to values, written
//! as text: one `NAME=value` line per setting (as in `.env`; a name is any
//! variable readygate reads, in any case; other lines are ignored; the last
//! line for a name wins). Each value is given as `--flag=value`, as on the
//! command line. What is checked: `readygate_fuzz::check_settings`.
//!
//! The seeds (`fuzz/corpus/settings_text/`) are the settings of the unit
//! tests (`src/config/tests.rs`, the backends' `options.rs`).

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use readygate_fuzz::{any_risky_path, check_settings, variables};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut values = BTreeMap::new();
    for line in text.split('\n') {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let Some(var) = variables()
            .iter()
            .find(|v| v.eq_ignore_ascii_case(name.trim()))
        else {
            continue;
        };
        values.insert(var.clone(), value.to_owned());
    }
    if values.values().any(|v| any_risky_path(v)) {
        return;
    }
    check_settings(&values, &BTreeMap::new(), &[0, 65535, 32768]);
});
