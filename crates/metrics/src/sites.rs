//! The one site table: every probe site of a forward pass, in execution order, with what the
//! engine, the contract parser and the report renderer need to know about it.
//!
//! Adding a site is one row in [`SITES`] (plus its probe line in the engine): the layer site
//! list, the contract vocabulary and the report's colours, legend and per-token picker all come
//! from here, and tests in `parallax-judge` and `parallax-report` check each of them covers
//! every row.

/// Where a site sits in the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Once per pass, outside the layers (`embed`, `final_norm`, `logits`).
    Global,
    /// Once in every layer.
    Layer,
}

/// A site's chart colour, as a CSS colour for each colour scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour {
    pub light: &'static str,
    pub dark: &'static str,
}

/// One probe site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteDef {
    /// The name in reports, contracts and CSS classes (`s-<name>`): an identifier, `[a-z_]`.
    pub name: &'static str,
    /// What is measured there, in a few words.
    pub label: &'static str,
    pub scope: Scope,
    /// Only architectures with post-norms after attention and FFN (Gemma 3) have the site.
    pub post_norm_only: bool,
    /// The output of a weight matmul: the sites replay mode re-runs on the reference's input
    /// and fault injection can corrupt.
    pub matmul: bool,
    /// A matmul site's weight, as its GGUF name within a layer (`attn_q` for
    /// `blk.N.attn_q.weight`): what ties a site's error to a tensor's type in the report.
    pub tensor: Option<&'static str>,
    /// Layer sites are charted per layer; global sites are not.
    pub colour: Option<Colour>,
}

const fn global(name: &'static str, label: &'static str) -> SiteDef {
    SiteDef {
        name,
        label,
        scope: Scope::Global,
        post_norm_only: false,
        matmul: false,
        tensor: None,
        colour: None,
    }
}

const fn layer(
    name: &'static str,
    label: &'static str,
    light: &'static str,
    dark: &'static str,
) -> SiteDef {
    SiteDef {
        name,
        label,
        scope: Scope::Layer,
        post_norm_only: false,
        matmul: false,
        tensor: None,
        colour: Some(Colour { light, dark }),
    }
}

const fn matmul(tensor: &'static str, site: SiteDef) -> SiteDef {
    SiteDef { matmul: true, tensor: Some(tensor), ..site }
}

const fn post_norm(site: SiteDef) -> SiteDef {
    SiteDef { post_norm_only: true, ..site }
}

/// Every site, in execution order: `embed`, the layer sites (in the order a layer runs them),
/// `final_norm`, `logits`. Colours: Tableau 10 and its dark-scheme lightening, the light ones
/// darkened where needed to 3:1 against the chart background (WCAG 2.1's non-text contrast).
pub static SITES: [SiteDef; 19] = [
    global("embed", "token embeddings"),
    layer("attn_norm", "attention input norm", "#4e79a7", "#7aa6d6"),
    matmul("attn_q", layer("q", "query projection", "#dc740e", "#ffad5c")),
    matmul("attn_k", layer("k", "key projection", "#e15759", "#ff8a8c")),
    matmul("attn_v", layer("v", "value projection", "#529c96", "#9fdcd6")),
    layer("attn_out", "attention output (heads merged)", "#59a14f", "#86cf7b"),
    matmul("attn_output", layer("attn_proj", "attention output projection", "#b08600", "#ffe27a")),
    post_norm(layer("attn_post_norm", "norm after attention", "#b07aa1", "#d4a3c9")),
    layer("resid_attn", "residual after attention", "#d1477a", "#ffc2ca"),
    layer("ffn_norm", "FFN input norm", "#9c755f", "#c9a189"),
    matmul("ffn_gate", layer("ffn_gate", "FFN gate projection", "#1f77b4", "#5fa8e8")),
    matmul("ffn_up", layer("ffn_up", "FFN up projection", "#139ead", "#5fe0ef")),
    layer("ffn_silu", "activation of the gate", "#7d8a12", "#e0e15a"),
    layer("ffn_swigl", "activated gate × up", "#d62728", "#ff6b6b"),
    matmul("ffn_down", layer("ffn_down", "FFN down projection", "#8c564b", "#c08a7d")),
    post_norm(layer("ffn_post_norm", "norm after the FFN", "#7f7f7f", "#b0b0b0")),
    layer("resid_ffn", "residual after the FFN", "#2ca02c", "#6fd36f"),
    global("final_norm", "final norm"),
    global("logits", "output logits"),
];

const fn count(scope: Scope) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < SITES.len() {
        if matches!(
            (SITES[i].scope, scope),
            (Scope::Layer, Scope::Layer) | (Scope::Global, Scope::Global)
        ) {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn names<const N: usize>(scope: Scope) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut j) = (0, 0);
    while i < SITES.len() {
        if matches!(
            (SITES[i].scope, scope),
            (Scope::Layer, Scope::Layer) | (Scope::Global, Scope::Global)
        ) {
            out[j] = SITES[i].name;
            j += 1;
        }
        i += 1;
    }
    out
}

const LAYER_NAMES: [&str; count(Scope::Layer)] = names(Scope::Layer);
const GLOBAL_NAMES: [&str; count(Scope::Global)] = names(Scope::Global);

/// Names of every layer site in execution order, on every architecture (Gemma 3's post-norms
/// included): [`SITES`]' layer rows.
pub const LAYER_SITES: &[&str] = &LAYER_NAMES;

/// Names of the sites outside the layers, in execution order: [`SITES`]' global rows.
pub const GLOBAL_SITES: &[&str] = &GLOBAL_NAMES;

/// Upstream's (`apr trace`, aprender `ActivationStats` slots) names for Parallax's sites. `qkv`
/// is one sample made of the three projections, so it maps to their union.
pub const ALIASES: &[(&str, &[&str])] = &[
    ("qkv", &["q", "k", "v"]),
    ("ffn_out", &["ffn_down"]),
    ("output", &["resid_ffn"]),
    ("ffn_silu_gate", &["ffn_silu"]),
    ("ffn_swiglu_inner", &["ffn_swigl"]),
    ("ffn_swiglu", &["ffn_swigl"]),
];

/// The site called `name` (Parallax's names only; see [`ALIASES`] for upstream's).
pub fn site(name: &str) -> Option<&'static SiteDef> {
    SITES.iter().find(|s| s.name == name)
}

/// The layer sites an architecture probes, in execution order.
pub fn layer_sites(has_post_norms: bool) -> impl Iterator<Item = &'static SiteDef> {
    SITES.iter().filter(move |s| s.scope == Scope::Layer && (has_post_norms || !s.post_norm_only))
}

/// Whether `name` is the output of a weight matmul.
pub fn is_matmul(name: &str) -> bool {
    site(name).is_some_and(|s| s.matmul)
}

/// The GGUF name of the weight whose matmul gives site `name` in layer `layer`
/// (`blk.3.ffn_down.weight`); `None` for a site that is no weight matmul.
pub fn tensor_name(name: &str, layer: u32) -> Option<String> {
    site(name)?.tensor.map(|t| format!("blk.{layer}.{t}.weight"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_identifiers_and_the_derived_lists_follow_the_table() {
        for (i, s) in SITES.iter().enumerate() {
            assert!(
                !s.name.is_empty() && s.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                s.name
            );
            assert!(SITES[..i].iter().all(|t| t.name != s.name), "{} twice", s.name);
            assert_eq!(s.colour.is_some(), s.scope == Scope::Layer, "{}", s.name);
            assert!(!ALIASES.iter().any(|(a, _)| *a == s.name), "{} is also an alias", s.name);
        }
        let layer: Vec<&str> = layer_sites(true).map(|s| s.name).collect();
        assert_eq!(layer, LAYER_SITES);
        assert_eq!(GLOBAL_SITES, ["embed", "final_norm", "logits"]);
        assert_eq!(LAYER_SITES.len() + GLOBAL_SITES.len(), SITES.len());
        // Execution order: embed first, final_norm and logits after every layer site.
        assert_eq!(SITES[0].name, "embed");
        assert_eq!(
            SITES[SITES.len() - 2..].iter().map(|s| s.name).collect::<Vec<_>>(),
            GLOBAL_SITES[1..]
        );
    }

    /// WCAG's relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn every_series_colour_stands_out_3_to_1_from_the_chart_background() {
        // The charts' background, report.css's `--px-card` in each scheme.
        let (light_card, dark_card) = ("#ffffff", "#1c1f23");
        for s in SITES.iter() {
            let Some(c) = s.colour else { continue };
            let (l, d) = (contrast(c.light, light_card), contrast(c.dark, dark_card));
            assert!(l >= 3.0, "{}: {} is {l:.2}:1 against {light_card}", s.name, c.light);
            assert!(d >= 3.0, "{}: {} is {d:.2}:1 against {dark_card}", s.name, c.dark);
        }
        // The check can fail: Tableau's own orange is below 3:1 on white.
        assert!(contrast("#f28e2b", light_card) < 3.0);
    }

    #[test]
    fn post_norms_only_where_the_architecture_has_them() {
        let without: Vec<&str> = layer_sites(false).map(|s| s.name).collect();
        let with: Vec<&str> = layer_sites(true).map(|s| s.name).collect();
        assert_eq!(with.len(), without.len() + 2);
        assert!(!without.contains(&"attn_post_norm") && !without.contains(&"ffn_post_norm"));
        assert!(with.contains(&"attn_post_norm") && with.contains(&"ffn_post_norm"));
    }

    #[test]
    fn aliases_name_known_layer_sites() {
        for (alias, parts) in ALIASES {
            for p in *parts {
                assert_eq!(site(p).map(|s| s.scope), Some(Scope::Layer), "{alias} → {p}");
            }
        }
        let mm: Vec<&str> = SITES.iter().filter(|s| s.matmul).map(|s| s.name).collect();
        assert_eq!(mm, ["q", "k", "v", "attn_proj", "ffn_gate", "ffn_up", "ffn_down"]);
        assert!(is_matmul("ffn_down") && !is_matmul("ffn_swigl") && !is_matmul("nope"));
        // Every matmul site names its weight, and no other site does.
        assert!(SITES.iter().all(|s| s.matmul == s.tensor.is_some()));
        assert_eq!(tensor_name("attn_proj", 3).as_deref(), Some("blk.3.attn_output.weight"));
        assert_eq!(tensor_name("ffn_swigl", 3), None);
    }
}
