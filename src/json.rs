//! JSON helpers every layer that reads JSON shares.

use serde_json::Value;

/// Writes every whole number given as a float (`5.0`) as an integer, so an `integer` field
/// takes it as JSON Schema says it should (serde reads `5.0` into a float only). A float
/// field still takes the integer.
pub fn whole_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(whole_numbers),
        Value::Object(m) => m.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn whole_floats_become_integers_and_others_stay() {
        let mut v = json!({"a": 807.0, "b": [1.5, 2.0, -3.0], "c": {"d": 1e300}, "e": "5.0"});
        super::whole_numbers(&mut v);
        assert_eq!(
            v,
            json!({"a": 807, "b": [1.5, 2, -3], "c": {"d": 1e300}, "e": "5.0"})
        );
    }
}
