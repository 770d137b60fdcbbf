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
