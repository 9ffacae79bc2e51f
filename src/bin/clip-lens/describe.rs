//! `clip-lens describe` (a neuron's card from a bundle) and `clip-lens neurons` (the neurons
//! whose direction best matches a text).

use std::path::Path;

use clip_lens::apps::cards::{neuron_card, LayerFidelity};
use clip_lens::device::read_f32_blocking;
use clip_lens::model::Towers;
use clip_lens::tokenizer::ClipTokenizer;
use clip_lens::Result;

use crate::common::{load_model, read_bundle_for, Loaded, ModelArgs};

/// `clip-lens describe`: the neuron's card (the page's, as JSON with `--json`): its words, top
/// images, nearest classes, threshold, distribution, the fidelity of its words, the heads its
/// effect flows through and its nearest neurons.
pub fn describe(bundle: &Path, layer: usize, neuron: usize, json: bool) -> Result<()> {
    let bundle = clip_lens::bundle::Bundle::read(bundle)?;
    // A layer the bundle lacks is named here; a neuron past the layer's, by the card.
    let fidelity = LayerFidelity::of(&bundle, layer)?.neuron(neuron);
    let card = neuron_card(&bundle, layer, neuron, None, fidelity)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&card).unwrap_or_default());
        return Ok(());
    }
    println!("layer {layer}, neuron {neuron}:");
    for (word, coef) in &card.words {
        println!("  {:>+9.4}  {word}", coef);
    }
    if let Some(threshold) = card.threshold {
        println!("threshold (k-th largest centred norm): {threshold:.4}");
    }
    match &card.distribution {
        Some(d) => {
            // An interpolated percentile is marked ≈, with the bin edges that hold the exact value.
            let percentiles: Vec<String> = d
                .percentiles
                .iter()
                .zip(&d.percentile_bounds)
                .map(|((p, v), bounds)| match bounds {
                    None => format!("p{p} {v:.4}"),
                    Some((low, Some(high))) => format!("p{p} ≈{v:.4} (in {low:.4}..{high:.4})"),
                    Some((low, None)) => format!("p{p} ≈{v:.4} (at least {low:.4})"),
                })
                .collect();
            println!("centred norms over {} images: {}", d.images, percentiles.join(", "));
            println!("above the threshold: {} images ({:.2}%)", d.above_threshold, 100.0 * d.share_above);
        }
        None => println!("(a format-2 bundle: no distribution; rebuild it with `clip-lens precompute`)"),
    }
    if let Some(f) = &card.fidelity {
        println!(
            "fidelity of the words: {:.3} (cosine of r_n and its words' reconstruction; layer median {:.3}, above {:.0}% of the layer)",
            f.cosine,
            f.layer_median,
            (100.0 * f.share_below).floor()
        );
    }
    match &card.heads {
        Some(grid) => {
            let named: Vec<String> =
                grid.largest.iter().map(|t| format!("L{}.H{} {:+.4}", t.layer, t.head, t.value)).collect();
            println!("heads carrying its effect along r_n (mean over its top k): {}", named.join(", "));
        }
        None => println!("(no per-head terms: a bundle before format 5; rebuild it with `clip-lens precompute`)"),
    }
    if let Some(neighbours) = &card.neighbours {
        let listed: Vec<String> = neighbours
            .iter()
            .map(|n| format!("{layer}:{} ({:.2}: {})", n.neuron, n.cosine, n.words.join(", ")))
            .collect();
        println!("nearest neurons by r_n: {}", listed.join("; "));
    }
    Ok(())
}

/// `clip-lens neurons`.
pub fn neurons(args: &ModelArgs, bundle: &Path, top: usize, json: bool, query: &str) -> Result<()> {
    let Loaded { model, weights, .. } = load_model(args, Towers::Text)?;
    let bundle = read_bundle_for(bundle, weights.bytes())?;
    let text = model.text()?;
    let tokens = ClipTokenizer::new().tokenize(query, text.config.context_length);
    let embedding = read_f32_blocking(text.encode(&tokens)?)?;
    let matches = bundle.neurons_matching(&embedding, top)?;
    let described = matches
        .iter()
        .map(|&(layer, neuron, score)| Ok((layer, neuron, score, bundle.describe(layer, neuron)?)))
        .collect::<Result<Vec<_>>>()?;
    if json {
        let list: Vec<serde_json::Value> = described
            .iter()
            .map(|(layer, neuron, score, words)| serde_json::json!({"layer": layer, "neuron": neuron, "score": score, "words": words.iter().take(5).map(|(w, c)| serde_json::json!([w, c])).collect::<Vec<_>>()}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for (layer, neuron, score, words) in described {
            let words: Vec<String> = words.iter().take(5).map(|(w, c)| format!("{w} ({c:+.3})")).collect();
            println!("layer {layer:>2} neuron {neuron:>5}  {score:+.4}  {}", words.join(", "));
        }
    }
    Ok(())
}
