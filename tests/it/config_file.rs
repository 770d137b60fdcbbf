//! config.example.toml is a valid configuration that states the defaults.

use demiurge::config::Config;

#[test]
fn the_example_configuration_loads_and_states_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let from_file = Config::load_from(Some(&path), Vec::new()).expect("config.example.toml loads");
    let defaults = Config::load_from(None, Vec::new()).unwrap();
    assert_eq!(
        toml_of(&from_file),
        toml_of(&defaults),
        "config.example.toml and the built-in defaults differ"
    );
}

fn toml_of(c: &Config) -> serde_json::Value {
    serde_json::to_value(c).unwrap()
}

/// Every key the configuration has is written out (uncommented) in config.example.toml, so the
/// example documents all of them. Lists that are empty by default are shown commented.
#[test]
fn the_example_configuration_names_every_key() {
    use figment::providers::{Format, Toml};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let written: serde_json::Value = figment::Figment::from(Toml::file(&path))
        .extract()
        .expect("config.example.toml parses");
    let defaults = toml_of(&Config::default());
    let mut missing = Vec::new();
    for (section, keys) in defaults.as_object().unwrap() {
        for (key, value) in keys.as_object().unwrap() {
            let shown = written.get(section).and_then(|s| s.get(key)).is_some();
            let empty_list = value.as_array().is_some_and(Vec::is_empty);
            if !shown && !value.is_null() && !empty_list {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "config.example.toml does not state: {missing:?}"
    );
}
