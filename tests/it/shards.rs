//! Sharded `precompute` (`--shard I/N`, `--merge`, `scripts/precompute-local.sh`) on the
//! fixture: the merged bundle is the unsharded one byte for byte; wrong sets of shard files are
//! refused by name; a killed shard resumes.
//!
//! The folder: the fixture's 48 PNGs and an unreadable file among them (49 files, the 21st
//! skipped); with `--batch 7` the 7 batches split 2 + 2 + 3 over 3 shards (files 0..14, 14..28,
//! 28..49), so shard 1 skips a file and shard 2's image ids start at 27.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use crate::common::*;
use clip_lens::bundle::Bundle;
use clip_lens::precompute::Shard;

/// The run's arguments but `--images` and `--out`.
const ARGS: [&str; 8] = ["--layers", "0,1,2", "--top-k", "6", "--components", "8", "--batch", "7"];

/// A scratch folder of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clip-lens-shards-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The image folder, the unsharded bundle and a sharded run's out (its shard files kept).
struct Base {
    images: PathBuf,
    unsharded: PathBuf,
    sharded: PathBuf,
}

impl Base {
    fn shard_file(&self, pass: u8, index: usize) -> PathBuf {
        self.sharded.join(format!("shards/pass{pass}-{index}-of-3.safetensors"))
    }
    fn means(&self) -> PathBuf {
        self.sharded.join("shards/means.safetensors")
    }
}

/// `precompute` of the run into `out` with `extra` arguments.
fn precompute(images: &Path, out: &Path, extra: &[&str]) -> Output {
    precompute_command(images, out).args(ARGS).args(extra).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn succeeded(output: Output) -> Output {
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// `precompute --merge FILES` of the run into `out`.
fn merge(images: &Path, out: &Path, files: &[PathBuf]) -> Output {
    precompute_command(images, out).args(ARGS).arg("--merge").args(files).output().unwrap()
}

/// The shard's pass (pass 2 with `means`) of the run into `out`, with `extra` arguments.
fn shard(images: &Path, out: &Path, index: usize, means: Option<&Path>, extra: &[&str]) -> Output {
    let mut command = precompute_command(images, out);
    command.args(ARGS).args(["--shard", &format!("{index}/3")]).args(extra);
    if let Some(means) = means {
        command.arg("--means").arg(means);
    }
    command.output().unwrap()
}

/// Runs the folder unsharded and in 3 shards, once for all tests.
fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = scratch("base");
        let images = dir.join("images");
        std::fs::create_dir_all(&images).unwrap();
        for entry in std::fs::read_dir(fixture_path("images")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, images.join(path.file_name().unwrap())).unwrap();
        }
        std::fs::write(images.join("img020-broken.png"), b"not an image").unwrap();
        let base = Base { unsharded: dir.join("unsharded"), sharded: dir.join("sharded"), images };
        succeeded(precompute(&base.images, &base.unsharded, &[]));
        for index in 0..3 {
            succeeded(shard(&base.images, &base.sharded, index, None, &[]));
        }
        succeeded(merge(&base.images, &base.sharded, &(0..3).map(|i| base.shard_file(1, i)).collect::<Vec<_>>()));
        for index in 0..3 {
            succeeded(shard(&base.images, &base.sharded, index, Some(&base.means()), &[]));
        }
        succeeded(merge(&base.images, &base.sharded, &(0..3).map(|i| base.shard_file(2, i)).collect::<Vec<_>>()));
        base
    })
}

/// The same bundle: equal values, and the same bytes in every file (thumbnails included).
fn assert_same_bundle(ours: &Path, unsharded: &Path) {
    assert_eq!(Bundle::read(ours).unwrap(), Bundle::read(unsharded).unwrap());
    let files = |dir: &Path| {
        let mut names: Vec<PathBuf> = ["manifest.json", "lens.safetensors"].iter().map(PathBuf::from).collect();
        let mut thumbnails: Vec<PathBuf> = std::fs::read_dir(dir.join("thumbnails"))
            .unwrap()
            .map(|e| Path::new("thumbnails").join(e.unwrap().file_name()))
            .collect();
        thumbnails.sort();
        names.extend(thumbnails);
        names
    };
    assert_eq!(files(ours), files(unsharded));
    for name in files(unsharded) {
        assert!(std::fs::read(ours.join(&name)).unwrap() == std::fs::read(unsharded.join(&name)).unwrap(), "{name:?}");
    }
}

/// 3 shards merged give the unsharded bundle exactly (the skipped file in shard 1 included).
#[test]
fn three_shards_merge_into_the_unsharded_bundle() {
    let base = base();
    assert_same_bundle(&base.sharded, &base.unsharded);
    let manifest = Bundle::read(&base.sharded).unwrap().manifest;
    assert_eq!((manifest.images.len(), manifest.skipped_images.len()), (48, 1));
    assert!(manifest.skipped_images[0].ends_with("img020-broken.png"));
    let slices: Vec<_> = (0..3).map(|index| Shard { index, count: 3 }.slice(49, 7)).collect();
    assert_eq!(slices, [0..14, 14..28, 28..49]);
    assert_eq!(Shard { index: 3, count: 4 }.slice(5, 2), 4..5, "slices are whole batches, the last one short");
    assert_eq!(Shard { index: 0, count: 4 }.slice(5, 2), 0..0, "more shards than batches leave some empty");
    assert!("3/3".parse::<Shard>().is_err() && "1-3".parse::<Shard>().is_err() && "2/3".parse::<Shard>().is_ok());
}

/// A missing or repeated shard, a pass-2 file among pass-1 files and the means file are refused,
/// naming the file or the shard; nothing is written.
#[test]
fn merge_refuses_missing_repeated_and_mixed_shards() {
    let base = base();
    let out = scratch("refused");
    let refused = |files: &[PathBuf], expected: &[&str]| {
        let output = merge(&base.images, &out, files);
        assert!(!output.status.success());
        for text in expected {
            assert!(stderr(&output).contains(text), "{text:?} not in {}", stderr(&output));
        }
    };
    let pass1 = |index| base.shard_file(1, index);
    refused(&[pass1(0), pass1(2)], &["missing", "shard 1/3 (pass1-1-of-3.safetensors)"]);
    let copy = out.join("copy.safetensors");
    std::fs::copy(pass1(1), &copy).unwrap();
    refused(
        &[pass1(0), pass1(1), copy.clone(), pass1(2)],
        &[&format!("{}: shard 1/3 is given twice (also {})", copy.display(), pass1(1).display())],
    );
    refused(
        &[pass1(0), base.shard_file(2, 1), pass1(2)],
        &[&format!("{}: this is a pass-2 shard file", base.shard_file(2, 1).display()), "one pass at a time"],
    );
    refused(&[base.means()], &["this is the merged means"]);
    refused(&[fixture_path("model-openai.safetensors")], &["is not a clip-lens shard or means file"]);
    assert!(!out.join("shards").exists() && !out.join("manifest.json").exists());
}

/// Shard files of other runs (weights, layers, k, image list) are refused, naming the file and
/// what differs.
#[test]
fn merge_refuses_shards_of_other_runs() {
    let base = base();
    let out = scratch("other-runs");
    let fewer = out.join("fewer-images");
    std::fs::create_dir_all(&fewer).unwrap();
    for entry in std::fs::read_dir(&base.images).unwrap().skip(1) {
        let path = entry.unwrap().path();
        std::fs::copy(&path, fewer.join(path.file_name().unwrap())).unwrap();
    }
    // (name, weights, images, layers, k, what the message says)
    let cases: [(&str, &str, &Path, &str, &str, &str); 4] = [
        ("layers", "model-openai", &base.images, "0,1", "6", "other layers ([0, 1], not [0, 1, 2])"),
        ("k", "model-openai", &base.images, "0,1,2", "5", "another --top-k (5, not 6)"),
        ("images", "model-openai", &fewer, "0,1,2", "6", "another image list (48 files, not 49"),
        ("weights", "model-hf", &base.images, "0,1,2", "6", "other weights"),
    ];
    for (name, weights, images, layers, k, expected) in cases {
        let other = out.join(name);
        let mut command = clip_lens_command();
        command.args(["precompute", "--weights"]).arg(fixture_path(&format!("{weights}.safetensors")));
        command.arg("--images").arg(images).arg("--words").arg(fixture_path("words.txt")).arg("--out").arg(&other);
        command.args(["--layers", layers, "--top-k", k, "--components", "8", "--batch", "7", "--shard", "1/3"]);
        succeeded(command.output().unwrap());
        let file = other.join("shards/pass1-1-of-3.safetensors");
        let output = merge(&base.images, &out, &[base.shard_file(1, 0), file.clone(), base.shard_file(1, 2)]);
        assert!(!output.status.success());
        let message = format!("{}: a shard of another run: {expected}", file.display());
        assert!(stderr(&output).contains(&message), "{name}: {message:?} not in {}", stderr(&output));
    }
}

/// Pass 2 of a shard centred on other means than the other shards' is refused at the merge;
/// `--means` must be merged means of this run.
#[test]
fn pass_two_shards_made_with_other_means_are_refused() {
    use clip_lens::tensor_file::{deserialize, serialize_with_metadata, NamedTensor, Values};
    let base = base();
    let out = scratch("other-means");
    let (tensors, metadata) = deserialize(&std::fs::read(base.means()).unwrap()).unwrap();
    let mut tensors: Vec<NamedTensor> = tensors.into_values().collect();
    let sum = tensors.iter_mut().find(|t| t.name == "layer.1.sum").unwrap();
    let Values::F64(values) = &mut sum.values else { panic!("sums are f64") };
    values[0] += 1e-3;
    let other_means = out.join("other-means.safetensors");
    std::fs::write(&other_means, serialize_with_metadata(&tensors, Some(metadata)).unwrap()).unwrap();
    succeeded(shard(&base.images, &out, 1, Some(&other_means), &[]));
    let file = out.join("shards/pass2-1-of-3.safetensors");
    let output = merge(&base.images, &out, &[base.shard_file(2, 0), file.clone(), base.shard_file(2, 2)]);
    assert!(!output.status.success());
    let message = format!("{}: pass 2 of this shard was centred on other means", file.display());
    assert!(stderr(&output).contains(&message), "{message:?} not in {}", stderr(&output));

    let not_means = shard(&base.images, &out, 0, Some(&base.shard_file(1, 0)), &[]);
    assert!(!not_means.status.success());
    assert!(stderr(&not_means).contains("not the merged means of the pass-1 shards"), "{}", stderr(&not_means));
}

/// A shard killed midway (abort: only its periodic checkpoint survives) resumes, in either pass,
/// and writes the shard file of an uninterrupted run; a finished shard is not run again.
#[test]
fn a_killed_shard_resumes() {
    let base = base();
    let out = scratch("killed");
    let means = Some(base.means());
    for (pass, means) in [(1u8, None), (2, means.as_deref())] {
        // Shard 2: 21 files, 3 batches; the process aborts after the second.
        let crashed = shard(&base.images, &out, 2, means, &["--checkpoint-seconds", "0", "--crash-after", "14"]);
        assert!(!crashed.status.success());
        assert!(stderr(&crashed).contains("simulated crash after 14 images"), "{}", stderr(&crashed));
        assert!(out.join(format!("shards/.pass{pass}-2-of-3.checkpoint.safetensors")).exists());
        let resumed = succeeded(shard(&base.images, &out, 2, means, &[]));
        let at = format!("resuming from the checkpoint: pass {pass}/2 at image 14/21");
        assert!(stderr(&resumed).contains(&at), "{}", stderr(&resumed));
        assert!(!out.join(format!("shards/.pass{pass}-2-of-3.checkpoint.safetensors")).exists());
        let file = format!("shards/pass{pass}-2-of-3.safetensors");
        assert!(std::fs::read(out.join(&file)).unwrap() == std::fs::read(base.sharded.join(&file)).unwrap(), "{file}");
        let again = succeeded(shard(&base.images, &out, 2, means, &[]));
        assert!(stderr(&again).contains("is already written"), "{}", stderr(&again));
    }
}

/// `scripts/precompute-local.sh 3 ARGS...` (ARGS those of an unsharded run) writes the
/// unsharded bundle and removes its shard files.
#[test]
fn local_script_with_three_processes_writes_the_unsharded_bundle() {
    let base = base();
    let out = scratch("script");
    let output = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/precompute-local.sh"))
        .arg("3")
        .args(precompute_command(&base.images, &out).args(ARGS).get_args().skip(1))
        .env("CLIP_LENS", env!("CARGO_BIN_EXE_clip-lens"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("pass 2: 3 shards done"), "{}", stderr(&output));
    assert_same_bundle(&out, &base.unsharded);
    assert!(!out.join("shards").exists());
}
