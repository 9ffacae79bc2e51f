//! The demo's committed data (`www/generated`: the tiny model's converted towers and its bundle
//! over `www/samples`) is what `convert` and `precompute` make today: `scripts/demo-bundle.sh`
//! runs again into a scratch folder, and every file must come out the same. Bytes must be equal,
//! except the floats that `precompute` computes: another CPU (AVX-512 or not, its thread count)
//! may round them differently, so those are compared within the fixture's model tolerance, and
//! everything else in the file (tensor names, shapes and dtypes; the manifest's words, ids and
//! structure) must still match exactly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::MODEL_TOLERANCE;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("www/generated")
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap_or_else(|e| panic!("{}: {e}", next.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found
}

/// Why `made` is not `expected` (the same file, committed and made now), or `None` when it is.
fn difference(file: &Path, expected: &[u8], made: &[u8]) -> Option<String> {
    if expected == made {
        return None;
    }
    match file.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => tensors_difference(expected, made),
        Some("json") => {
            let (expected, made): (Value, Value) =
                (serde_json::from_slice(expected).unwrap(), serde_json::from_slice(made).unwrap());
            json_difference("", &expected, &made)
        }
        _ => Some(format!("{} bytes against {} committed, not the same", made.len(), expected.len())),
    }
}

/// The first tensor that differs in name, dtype or shape, or whose f32 values are not within
/// [`MODEL_TOLERANCE`] of its largest magnitude (other dtypes must be equal).
fn tensors_difference(expected: &[u8], made: &[u8]) -> Option<String> {
    let (expected, made) = (SafeTensors::deserialize(expected).unwrap(), SafeTensors::deserialize(made).unwrap());
    let names = |t: &SafeTensors| t.names().into_iter().cloned().collect::<BTreeSet<_>>();
    if names(&expected) != names(&made) {
        return Some(format!("tensors {:?} against {:?} committed", names(&made), names(&expected)));
    }
    names(&expected).into_iter().find_map(|name| {
        let (want, got) = (expected.tensor(&name).unwrap(), made.tensor(&name).unwrap());
        if (want.dtype(), want.shape()) != (got.dtype(), got.shape()) {
            return Some(format!(
                "{name}: {:?} {:?} against {:?} {:?} committed",
                got.dtype(),
                got.shape(),
                want.dtype(),
                want.shape()
            ));
        }
        if want.dtype() != Dtype::F32 {
            return (want.data() != got.data()).then(|| format!("{name}: other values"));
        }
        let values =
            |bytes: &[u8]| bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>();
        let (want, got) = (values(want.data()), values(got.data()));
        let bound = MODEL_TOLERANCE * want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let (at, worst) = want
            .iter()
            .zip(&got)
            .map(|(w, g)| (w - g).abs())
            .enumerate()
            .fold((0, 0.0f32), |a, (i, d)| if d > a.1 || d.is_nan() { (i, d) } else { a });
        (worst > bound || worst.is_nan()).then(|| {
            format!("{name}: value {at} is {} against {} committed (tolerance {bound:.2e})", got[at], want[at])
        })
    })
}

/// The first place where two JSON documents differ: numbers may differ by [`MODEL_TOLERANCE`]
/// of their magnitude (at least 1), everything else must be equal.
fn json_difference(path: &str, expected: &Value, made: &Value) -> Option<String> {
    match (expected, made) {
        (Value::Number(want), Value::Number(got)) if want.is_f64() || got.is_f64() => {
            let (want, got) = (want.as_f64().unwrap(), got.as_f64().unwrap());
            ((want - got).abs() > f64::from(MODEL_TOLERANCE) * want.abs().max(1.0))
                .then(|| format!("{path}: {got} against {want} committed"))
        }
        (Value::Array(want), Value::Array(got)) if want.len() == got.len() => {
            want.iter().zip(got).enumerate().find_map(|(i, (w, g))| json_difference(&format!("{path}[{i}]"), w, g))
        }
        (Value::Object(want), Value::Object(got)) if want.keys().eq(got.keys()) => {
            want.iter().find_map(|(key, w)| json_difference(&format!("{path}.{key}"), w, &got[key]))
        }
        _ => (expected != made).then(|| format!("{path}: {made} against {expected} committed")),
    }
}

#[test]
fn committed_demo_data_is_what_convert_and_precompute_make() {
    let scratch = std::env::temp_dir().join(format!("clip-lens-demo-data-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo-bundle.sh");
    let run = Command::new("bash")
        .arg(&script)
        .arg(&scratch)
        .env("CLIP_LENS", env!("CARGO_BIN_EXE_clip-lens"))
        .output()
        .unwrap();
    assert!(run.status.success(), "demo-bundle.sh failed: {}", String::from_utf8_lossy(&run.stderr));

    let (expected, made) = (files(&committed()), files(&scratch));
    assert_eq!(
        expected, made,
        "the demo data's files changed: run `bash scripts/demo-bundle.sh` and commit www/generated"
    );
    assert!(expected.len() >= 5, "www/generated holds only {expected:?}");
    let stale: Vec<String> = expected
        .iter()
        .filter_map(|file| {
            let (old, new) =
                (std::fs::read(committed().join(file)).unwrap(), std::fs::read(scratch.join(file)).unwrap());
            difference(file, &old, &new).map(|why| format!("{}: {why}", file.display()))
        })
        .collect();
    std::fs::remove_dir_all(&scratch).ok();
    assert!(
        stale.is_empty(),
        "the committed demo data is stale (run `bash scripts/demo-bundle.sh` and commit www/generated):\n{}",
        stale.join("\n")
    );
}

/// The comparison itself: a changed word, a changed tensor value and a changed thumbnail byte
/// are each found; a float within the tolerance is not.
#[test]
fn the_comparison_finds_what_differs() {
    let manifest = std::fs::read(committed().join("tiny-bundle/manifest.json")).unwrap();
    let text = String::from_utf8(manifest.clone()).unwrap();
    let renamed = text.replacen("\"search\"", "\"searched\"", 1).into_bytes();
    assert!(difference(Path::new("manifest.json"), &manifest, &renamed).is_some_and(|why| why.contains("searched")));

    let lens = std::fs::read(committed().join("tiny-bundle/lens.safetensors")).unwrap();
    let header = 8 + u64::from_le_bytes(lens[..8].try_into().unwrap()) as usize;
    let mut nudged = lens.clone();
    let first = f32::from_le_bytes(lens[header..header + 4].try_into().unwrap());
    nudged[header..header + 4].copy_from_slice(&(first * (1.0 + 1e-6) + 1e-9).to_le_bytes());
    assert_eq!(
        difference(Path::new("lens.safetensors"), &lens, &nudged),
        None,
        "a rounding difference is not staleness"
    );
    nudged[header..header + 4].copy_from_slice(&(first + 1.0).to_le_bytes());
    assert!(difference(Path::new("lens.safetensors"), &lens, &nudged).is_some());

    let thumbnail = std::fs::read(committed().join("tiny-bundle/thumbnails/0.jpg")).unwrap();
    let mut changed = thumbnail.clone();
    *changed.last_mut().unwrap() ^= 1;
    assert!(difference(Path::new("0.jpg"), &thumbnail, &changed).is_some());
}
