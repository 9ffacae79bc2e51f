//! CSV exports of a neuron's card and of an analysis with its ablations (the page's download
//! buttons; JSON exports are the results themselves). Tidy tables: one value per row.

use super::results::{AblationResult, AblationView, Analysis, NeuronCard};

/// The card's header.
const CARD_HEADER: &str = "layer,neuron,field,index,label,value";

/// The analysis's header.
const ANALYSIS_HEADER: &str = "section,variant,layer,neuron,rank,label,value";

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A row of fields.
fn row(fields: &[String]) -> String {
    fields.iter().map(|f| field(f)).collect::<Vec<_>>().join(",")
}

/// A card as CSV: its words (`word`, coefficient), top images (`top_image`, id), nearest
/// classes (`class`, cosine), threshold, percentiles and histogram bins (`bin`, count; the
/// label is `[low, high)`).
pub fn card_csv(card: &NeuronCard) -> String {
    let mut lines = vec![CARD_HEADER.to_string()];
    let mut push = |name: &str, index: usize, label: String, value: String| {
        lines.push(row(&[
            card.layer.to_string(),
            card.neuron.to_string(),
            name.into(),
            index.to_string(),
            label,
            value,
        ]));
    };
    for (i, (word, coefficient)) in card.words.iter().enumerate() {
        push("word", i, word.clone(), coefficient.to_string());
    }
    for (i, image) in card.top_images.iter().enumerate() {
        push("top_image", i, image.path.clone().unwrap_or_default(), image.id.to_string());
    }
    for (i, class) in card.classes.iter().enumerate() {
        push("class", i, class.name.clone(), class.cosine.to_string());
    }
    if let Some(threshold) = card.threshold {
        push("threshold", 0, String::new(), threshold.to_string());
    }
    if let Some(norm) = card.analysed_norm {
        push("analysed_norm", 0, String::new(), norm.to_string());
    }
    if let Some(d) = &card.distribution {
        for (i, (p, value)) in d.percentiles.iter().enumerate() {
            push("percentile", i, format!("p{p}"), value.to_string());
        }
        for (i, count) in d.counts.iter().enumerate() {
            push("bin", i, format!("[{}, {})", d.edges[i], d.edges[i + 1]), count.to_string());
        }
    }
    lines.join("\n") + "\n"
}

/// An analysis and the ablations run on it as CSV: classes (probability) and merged words
/// (score) of the analysis and of each ablation's result (variant = its description), every
/// layer's words and significant neurons (centred norm; label = its first words).
pub fn analysis_csv(analysis: &Analysis, ablations: &[AblationResult]) -> String {
    let mut lines = vec![ANALYSIS_HEADER.to_string()];
    let mut push = |section: &str,
                    variant: &str,
                    layer: Option<usize>,
                    neuron: Option<usize>,
                    rank: usize,
                    label: &str,
                    value: String| {
        let optional = |x: Option<usize>| x.map(|x| x.to_string()).unwrap_or_default();
        lines.push(row(&[
            section.into(),
            variant.into(),
            optional(layer),
            optional(neuron),
            rank.to_string(),
            label.into(),
            value,
        ]));
    };
    let mut views = vec![(
        "analysis".to_string(),
        AblationView { classes: analysis.classes.clone(), words: analysis.words.clone() },
    )];
    views.extend(ablations.iter().map(|a| (format!("after: {}", a.description), a.after.clone())));
    for (variant, view) in &views {
        for (i, class) in view.classes.iter().enumerate() {
            push("class", variant, None, None, i, &class.name, class.probability.to_string());
        }
        for (i, (word, score)) in view.words.iter().enumerate() {
            push("word", variant, None, None, i, word, score.to_string());
        }
    }
    for layer in &analysis.layers {
        for (i, (word, score)) in layer.words.iter().enumerate() {
            push("layer_word", "analysis", Some(layer.layer), None, i, word, score.to_string());
        }
        for (i, neuron) in layer.neurons.iter().enumerate() {
            let words: Vec<&str> = neuron.words.iter().map(|(w, _)| w.as_str()).collect();
            push(
                "significant_neuron",
                "analysis",
                Some(layer.layer),
                Some(neuron.neuron),
                i,
                &words.join(" "),
                neuron.norm.to_string(),
            );
        }
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a, b"), "\"a, b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(row(&["1".into(), "x,y".into()]), "1,\"x,y\"");
    }
}
