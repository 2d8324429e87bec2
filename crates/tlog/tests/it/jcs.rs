//! RFC 8785 (JCS) vectors: the RFC's own examples and the reference implementation's files.

use serde_json::{json, Value};
use throughcare_tlog::canonical_json;

fn check(input: &Value, expected: &str) {
    let got = canonical_json(input);
    assert_eq!(String::from_utf8(got).unwrap(), expected, "input {input}");
}

#[test]
fn rfc_8785_section_3_2_2_example() {
    // Parsed from the RFC's input text, so the parser's number handling is exercised too.
    let input = r#"{
      "numbers": [333333333.33333329, 1E30, 4.50,
                  2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    check(
        &value,
        r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#,
    );
    // Section 3.2.4 gives the same output as UTF-8 bytes.
    let utf8 = "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
                75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
                5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
                65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
                5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
                30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d";
    let utf8 = hex::decode(utf8.split_whitespace().collect::<String>()).unwrap();
    assert_eq!(canonical_json(&value), utf8);
}

#[test]
fn rfc_8785_section_3_2_3_sorting_by_utf16_code_units() {
    let input = r#"{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    // U+1F600 (surrogates D83D DE00) sorts before U+FB33 by UTF-16 code units, though
    // after it by code points or UTF-8 bytes.
    check(
        &value,
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
         \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
         \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
    );
}

#[test]
fn rfc_8785_appendix_b_number_serialisation() {
    // (IEEE 754 bits, ECMAScript serialisation); NaN and Infinity cannot be in a Value.
    let cases: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for &(bits, expected) in cases {
        check(&json!(f64::from_bits(bits)), expected);
    }
}

#[test]
fn integers_are_written_as_ecmascript_numbers() {
    check(&json!(0), "0");
    check(&json!(-7), "-7");
    check(&json!(1_000_000_000_000_000_000u64), "1000000000000000000");
    check(&json!(u64::MAX), "18446744073709552000");
    check(&json!(1e21), "1e+21");
}

#[test]
fn string_escaping_is_minimal() {
    // Only controls below U+0020 are escaped (as \u00xx, lowercase hex, unless they have a
    // short form); DEL, U+2028/9 and HTML-sensitive characters are written as they are.
    check(&json!("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
    check(&json!("\u{8}\t\n\u{c}\r\"\\/"), r#""\b\t\n\f\r\"\\/""#);
    check(&json!("\u{2028}\u{2029}<>&'"), "\"\u{2028}\u{2029}<>&'\"");
    check(
        &json!({"b": [], "a": {}, "": null}),
        r#"{"":null,"a":{},"b":[]}"#,
    );
}

#[test]
fn reference_implementation_test_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jcs");
    let names = [
        "arrays",
        "french",
        "structures",
        "unicode",
        "values",
        "weird",
    ];
    for name in names {
        let input = std::fs::read_to_string(dir.join(format!("{name}.input.json"))).unwrap();
        let output = std::fs::read(dir.join(format!("{name}.output.json"))).unwrap();
        let value: Value = serde_json::from_str(&input).unwrap();
        assert_eq!(
            canonical_json(&value),
            output,
            "{name}: {}",
            String::from_utf8_lossy(&canonical_json(&value))
        );
    }
}
