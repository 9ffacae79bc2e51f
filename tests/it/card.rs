//! The embeddable neuron card reads a bundle on its own, with HTTP range requests, so that a blog
//! post never downloads the module: its reader (`www/src/neuron-card.ts`, run by Node in
//! `www/test/card-reader.mjs`) must show what `clip-lens describe --json` shows for the same
//! neuron, and fetch `lens.safetensors` by ranges, not whole.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn repository(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `program` with `args` and parses its standard output as JSON.
fn json_of(mut command: Command, what: &str) -> Value {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what} failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {stderr}"))
}

fn f64_of(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

fn assert_close(a: &Value, b: &Value, tolerance: f64, what: &str) {
    let (a, b) = (f64_of(a), f64_of(b));
    assert!((a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1e-6), "{what}: {a} against {b}");
}

/// The card's reader and `describe --json` on neurons of each layer of the demo bundle.
#[test]
fn card_reader_matches_describe() {
    let bundle = repository("www/generated/tiny-bundle");
    for (layer, neuron) in [(0, 7), (1, 4), (2, 255)] {
        let mut node = Command::new("node");
        node.arg(repository("www/test/card-reader.mjs")).arg(&bundle).arg(layer.to_string()).arg(neuron.to_string());
        let read = json_of(node, "node www/test/card-reader.mjs (npm ci --prefix www installs esbuild)");
        let mut describe = Command::new(env!("CARGO_BIN_EXE_clip-lens"));
        describe.args([
            "describe",
            "--json",
            "--layer",
            &layer.to_string(),
            "--neuron",
            &neuron.to_string(),
            "--bundle",
        ]);
        describe.arg(&bundle);
        let described = json_of(describe, "clip-lens describe --json");
        let (card, label) = (&read["card"], format!("{layer}:{neuron}"));

        let (words, expected_words) = (card["words"].as_array().unwrap(), described["words"].as_array().unwrap());
        assert_eq!(words.len(), expected_words.len(), "{label}: word count");
        assert!(!words.is_empty(), "{label}: no words");
        for (word, expected) in words.iter().zip(expected_words) {
            assert_eq!(word[0], expected[0], "{label}: words in order");
            assert_close(&word[1], &expected[1], 1e-6, &format!("{label}: coefficient of {}", word[0]));
        }
        let (classes, expected_classes) =
            (card["classes"].as_array().unwrap(), described["classes"].as_array().unwrap());
        assert_eq!(classes.len(), expected_classes.len(), "{label}: nearest classes");
        for (class, expected) in classes.iter().zip(expected_classes) {
            assert_eq!(class[0], expected["name"], "{label}: nearest classes in order");
            assert_close(&class[1], &expected["cosine"], 1e-4, &format!("{label}: cosine of {}", class[0]));
        }
        assert_close(&card["threshold"], &described["threshold"], 1e-6, &format!("{label}: threshold"));
        let ids: Vec<&Value> = card["images"].as_array().unwrap().iter().map(|i| &i["id"]).collect();
        let expected_ids: Vec<&Value> = described["top_images"].as_array().unwrap().iter().map(|i| &i["id"]).collect();
        assert_eq!(ids, expected_ids, "{label}: top images");

        let lens = &read["served"]["lens.safetensors"];
        let (partial, sent, size) = (lens["partial"].as_u64().unwrap(), lens["bytes"].as_u64(), lens["size"].as_u64());
        assert_eq!(lens["requests"].as_u64(), Some(partial), "{label}: every read of lens.safetensors is a range read");
        assert!(sent < size.map(|s| s / 2), "{label}: {sent:?} of {size:?} bytes of lens.safetensors read");
    }
}
