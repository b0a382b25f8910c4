//! The prediction parser: a `pv` test's prose `prediction` turned into a [`Check`] (grammar in
//! the [`super`] module doc).

use parallax_metrics::sites::{GLOBAL_SITES, LAYER_SITES};

use super::check::{Band, Check, Layers, LogitsMetric, Metric, Stat};
use super::SiteRef;

#[derive(Debug)]
pub(super) enum PredError {
    Syntax(String),
    UnknownSite(String),
}

/// A prediction names a measurable quantity when it addresses a path's layer or a global site.
fn looks_measurable(text: &str) -> bool {
    if text.contains("_layer[") || text.contains("_stats.") {
        return true;
    }
    // `<path>.embed`, `<path>.final_norm`, `<path>.logits`: a global site right after a name and
    // ending there (`notes.embed.md` is a file name, not a site).
    GLOBAL_SITES.iter().any(|g| {
        let pat = format!(".{g}");
        text.match_indices(&pat).any(|(at, _)| {
            let before = text[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let after = text[at + pat.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '.'));
            before && after
        })
    })
}

pub(super) fn parse_prediction(text: &str) -> Result<Check, PredError> {
    if !looks_measurable(text) {
        let t = text.trim();
        let reason = if t.starts_with('`') {
            let cmd = t.trim_start_matches('`').split('`').next().unwrap_or("");
            format!("runs a command (`{cmd}`), not a quantity a report holds")
        } else {
            "prose about the upstream code base: it names no `<path>_layer[i].<site>` quantity"
                .to_string()
        };
        return Ok(Check::NotMeasurable { reason });
    }
    // Paragraphs after the expression are explanation; the quantifier may span several.
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    let mut best: Option<(usize, PredError)> = None;
    for k in 1..=paragraphs.len() {
        let joined = paragraphs[..k].join(" ");
        let mut p = Parser { s: &joined, pos: 0 };
        match p.prediction() {
            Ok(check) => return Ok(check),
            Err(e) => {
                if let PredError::UnknownSite(_) = e {
                    return Err(e);
                }
                if best.as_ref().is_none_or(|(pos, _)| p.pos >= *pos) {
                    best = Some((p.pos, e));
                }
            }
        }
    }
    Err(best.map(|(_, e)| e).unwrap_or_else(|| PredError::Syntax("empty prediction".into())))
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

/// One side of an expression: `<path>_layer[i|N].<site>[_stats.<stat>]` or `<path>.<site>[…]`.
#[derive(Debug)]
struct Accessor {
    path: String,
    layer: LayerIdx,
    site: SiteTok,
    stat: Option<Stat>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum LayerIdx {
    Var,
    Fixed(u32),
    Global,
}

#[derive(Debug, Clone, PartialEq)]
enum SiteTok {
    Var,
    Name(String),
}

enum Operand {
    Acc(Accessor),
    Ratio(Accessor, Accessor),
    Func(String, Accessor, Accessor),
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.rest().starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, PredError> {
        let near: String = self.rest().chars().take(40).collect();
        Err(PredError::Syntax(if near.is_empty() {
            format!("expected {what} at the end")
        } else {
            format!("expected {what} at `{near}`")
        }))
    }

    fn expect(&mut self, tok: &str) -> Result<(), PredError> {
        if self.eat(tok) {
            Ok(())
        } else {
            self.err(&format!("`{tok}`"))
        }
    }

    fn ident(&mut self) -> Option<&'a str> {
        self.ws();
        let r = self.rest();
        // `@` joins a path to its file: `q8@2` is the q8 path on a run's second file.
        let n = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '@'))
            .unwrap_or(r.len());
        if n == 0 {
            return None;
        }
        self.pos += n;
        Some(&r[..n])
    }

    fn number(&mut self) -> Result<f64, PredError> {
        self.ws();
        let r = self.rest();
        let n = r
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
            .unwrap_or(r.len());
        match r[..n].parse::<f64>() {
            Ok(v) if v.is_finite() => {
                self.pos += n;
                Ok(v)
            }
            _ => self.err("a number"),
        }
    }

    fn uint(&mut self) -> Result<u32, PredError> {
        let v = self.number()?;
        if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
            Ok(v as u32)
        } else {
            Err(PredError::Syntax(format!("expected a layer index, found {v}")))
        }
    }

    fn prediction(&mut self) -> Result<Check, PredError> {
        let mut layers = None;
        let mut site_set: Option<Vec<String>> = None;
        self.ws();
        if self.rest().to_ascii_lowercase().starts_with("for each layer") {
            self.pos += "for each layer".len();
            self.ident().map_or_else(|| self.err("the layer variable (`i`)"), Ok)?;
            if self.eat("∈") || self.eat("in ") {
                self.expect("[")?;
                let start = self.uint()?;
                self.expect(",")?;
                let end = self.uint()?;
                let end = if self.eat(")") {
                    end
                } else if self.eat("]") {
                    end.saturating_add(1)
                } else {
                    return self.err("`)` or `]` closing the layer range");
                };
                if end <= start {
                    return Err(PredError::Syntax(format!(
                        "the layer range [{start}, {end}) is empty"
                    )));
                }
                layers = Some(Layers::Range { start, end });
            } else {
                layers = Some(Layers::All);
            }
            if self.eat("and each") {
                // `and each ActivationStats slot s ∈ {…}`: words up to the `∈`.
                let r = self.rest();
                let Some(at) = r.find('∈') else {
                    return self.err("`∈` after `and each …`");
                };
                self.pos += at + '∈'.len_utf8();
                if self.eat("*") {
                    site_set = Some(LAYER_SITES.iter().map(|s| s.to_string()).collect());
                } else {
                    self.expect("{")?;
                    let mut set = Vec::new();
                    loop {
                        let Some(name) = self.ident() else {
                            return self.err("a site name");
                        };
                        set.push(name.to_string());
                        if self.eat("}") {
                            break;
                        }
                        self.expect(",")?;
                    }
                    site_set = Some(set);
                }
            }
            if !(self.eat(":") || self.eat(",")) {
                return self.err("`:` or `,` after the quantifier");
            }
        }
        let lhs = self.operand()?;
        self.ws();
        let check = self.comparison(lhs, layers, site_set.as_deref())?;
        self.ws();
        if !self.rest().is_empty() {
            return self.err("the end of the expression");
        }
        Ok(check)
    }

    fn accessor(&mut self) -> Result<Accessor, PredError> {
        let Some(word) = self.ident() else {
            return self.err("a path accessor like `apr_layer[i].ffn_swigl_stats.std`");
        };
        let (path, layer) = if let Some(path) = word.strip_suffix("_layer") {
            self.expect("[")?;
            let layer = if self.eat("i") { LayerIdx::Var } else { LayerIdx::Fixed(self.uint()?) };
            self.expect("]")?;
            (path.to_string(), layer)
        } else {
            (word.to_string(), LayerIdx::Global)
        };
        self.expect(".")?;
        let site = if self.eat("<") {
            self.ident().map_or_else(|| self.err("the site variable"), Ok)?;
            self.expect(">")?;
            if self.rest().starts_with("_stats") {
                self.pos += "_stats".len();
                self.expect(".")?;
                let stat = self.stat()?;
                return Ok(Accessor { path, layer, site: SiteTok::Var, stat: Some(stat) });
            }
            SiteTok::Var
        } else {
            let Some(name) = self.ident() else {
                return self.err("a site name");
            };
            if let Some(site) = name.strip_suffix("_stats") {
                self.expect(".")?;
                let stat = self.stat()?;
                return Ok(Accessor {
                    path,
                    layer,
                    site: SiteTok::Name(site.into()),
                    stat: Some(stat),
                });
            }
            SiteTok::Name(name.into())
        };
        Ok(Accessor { path, layer, site, stat: None })
    }

    fn stat(&mut self) -> Result<Stat, PredError> {
        let Some(name) = self.ident() else {
            return self.err("a statistic");
        };
        Stat::parse(name).ok_or_else(|| {
            PredError::Syntax(format!(
                "unknown statistic `{name}` (count, mean, std, min, max, absmax, nan, inf, nonfinite, zeros)"
            ))
        })
    }

    fn operand(&mut self) -> Result<Operand, PredError> {
        self.ws();
        let save = self.pos;
        if let Some(word) = self.ident() {
            if self.eat("(") {
                let a = self.accessor()?;
                self.expect(",")?;
                let b = self.accessor()?;
                self.expect(")")?;
                return Ok(Operand::Func(word.to_string(), a, b));
            }
        }
        self.pos = save;
        let a = self.accessor()?;
        if self.eat("/") {
            let b = self.accessor()?;
            return Ok(Operand::Ratio(a, b));
        }
        Ok(Operand::Acc(a))
    }

    fn band(&mut self) -> Result<Band, PredError> {
        let open = Band { lo: None, hi: None, lo_open: false, hi_open: false };
        if self.eat("∈") || self.eat("in ") {
            let lo_open = if self.eat("[") {
                false
            } else if self.eat("(") {
                true
            } else {
                return self.err("`[` or `(` opening the band");
            };
            let lo = self.number()?;
            self.expect(",")?;
            let hi = self.number()?;
            let hi_open = if self.eat("]") {
                false
            } else if self.eat(")") {
                true
            } else {
                return self.err("`]` or `)` closing the band");
            };
            if hi < lo {
                return Err(PredError::Syntax(format!("the band [{lo}, {hi}] is empty")));
            }
            return Ok(Band { lo: Some(lo), hi: Some(hi), lo_open, hi_open });
        }
        for (tok, is_hi, strict) in [
            ("≤", true, false),
            ("<=", true, false),
            ("≥", false, false),
            (">=", false, false),
            ("<", true, true),
            (">", false, true),
        ] {
            if self.eat(tok) {
                let v = self.number()?;
                return Ok(if is_hi {
                    Band { hi: Some(v), hi_open: strict, ..open }
                } else {
                    Band { lo: Some(v), lo_open: strict, ..open }
                });
            }
        }
        if self.eat("==") {
            let v = self.number()?;
            return Ok(Band { lo: Some(v), hi: Some(v), ..open });
        }
        self.err("a band (`∈ [lo, hi]`, `≤ x`, `≥ x`, `== x`)")
    }

    fn comparison(
        &mut self,
        lhs: Operand,
        layers: Option<Layers>,
        set: Option<&[String]>,
    ) -> Result<Check, PredError> {
        match lhs {
            Operand::Ratio(a, b) => {
                let (stat, sites, layers) = self.pair(&a, &b, layers, set)?;
                let band = self.band()?;
                Ok(Check::StatRatio { stat, num: a.path, den: b.path, sites, layers, band })
            }
            Operand::Acc(a) => {
                let save = self.pos;
                if self.eat("==") {
                    self.ws();
                    if self.rest().starts_with(|c: char| c.is_ascii_alphabetic()) {
                        let b = self.accessor()?;
                        let (stat, sites, layers) = self.pair(&a, &b, layers, set)?;
                        return Ok(Check::StatEqual { stat, a: a.path, b: b.path, sites, layers });
                    }
                }
                self.pos = save;
                let Some(stat) = a.stat else {
                    return Err(PredError::Syntax(format!(
                        "`{}` names a site but no statistic (write `…_stats.std` or compare two paths with a function)",
                        a.path
                    )));
                };
                let (sites, layers) = self.where_(&a, layers, set)?;
                let band = self.band()?;
                Ok(Check::StatBand { stat, path: a.path, sites, layers, band })
            }
            Operand::Func(name, a, b) => {
                if a.stat.is_some() || b.stat.is_some() {
                    return Err(PredError::Syntax(format!(
                        "`{name}(…)` compares sites' values, not statistics"
                    )));
                }
                if a.site != b.site || a.layer != b.layer {
                    return Err(PredError::Syntax(format!(
                        "`{name}(…)` must compare the same site of the same layer"
                    )));
                }
                let is_logits = a.site == SiteTok::Name("logits".into());
                if is_logits {
                    let Some(metric) = LogitsMetric::parse(&name) else {
                        return Err(PredError::Syntax(format!(
                            "unknown logits function `{name}` (kl, top1_agree, top10_overlap, cosine, noise_ratio; over every position: kld_mean, kld_p99, same_top1)"
                        )));
                    };
                    let band = self.band()?;
                    // kl(reference, path) reads as KL(P_ref ‖ P_path); the others take (path, reference).
                    let (path, reference) =
                        if metric.reference_first() { (b.path, a.path) } else { (a.path, b.path) };
                    return Ok(Check::Logits { metric, path, reference, band });
                }
                let Some(metric) = Metric::parse(&name) else {
                    return Err(PredError::Syntax(format!(
                        "unknown function `{name}` (cosine, rel_l2, sqnr_db, max_abs, std_ratio, noise_ratio; on logits: kl, top1_agree, top10_overlap)"
                    )));
                };
                let (sites, layers) = self.where_(&a, layers, set)?;
                let band = self.band()?;
                Ok(Check::Compare { metric, path: a.path, reference: b.path, sites, layers, band })
            }
        }
    }

    fn pair(
        &self,
        a: &Accessor,
        b: &Accessor,
        layers: Option<Layers>,
        set: Option<&[String]>,
    ) -> Result<(Stat, Vec<SiteRef>, Layers), PredError> {
        let (Some(sa), Some(sb)) = (a.stat, b.stat) else {
            return Err(PredError::Syntax(
                "both sides must name a statistic (`…_stats.std`)".into(),
            ));
        };
        if sa != sb {
            return Err(PredError::Syntax(format!(
                "the two sides compare different statistics ({} vs {})",
                sa.as_str(),
                sb.as_str()
            )));
        }
        if a.site != b.site || a.layer != b.layer {
            return Err(PredError::Syntax(
                "the two sides must address the same site of the same layer".into(),
            ));
        }
        let (sites, layers) = self.where_(a, layers, set)?;
        Ok((sa, sites, layers))
    }

    /// The sites and layers an accessor covers under the quantifier.
    fn where_(
        &self,
        a: &Accessor,
        layers: Option<Layers>,
        set: Option<&[String]>,
    ) -> Result<(Vec<SiteRef>, Layers), PredError> {
        let names: Vec<String> = match (&a.site, set) {
            (SiteTok::Name(n), _) => vec![n.clone()],
            (SiteTok::Var, Some(set)) => set.to_vec(),
            (SiteTok::Var, None) => {
                return Err(PredError::Syntax(
                    "`<s>` is used but no `and each … s ∈ {…}` quantifier defines it".into(),
                ))
            }
        };
        let sites = names
            .iter()
            .map(|n| SiteRef::resolve(n).ok_or_else(|| PredError::UnknownSite(n.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let layers = match (a.layer, layers) {
            (LayerIdx::Var, Some(l)) => l,
            (LayerIdx::Var, None) => {
                return Err(PredError::Syntax(
                    "`[i]` is used but no `For each layer i …` quantifier defines it".into(),
                ))
            }
            (LayerIdx::Fixed(n), _) => Layers::One(n),
            (LayerIdx::Global, _) => Layers::None,
        };
        let global = sites.iter().any(|s| s.is_global());
        if global != (layers == Layers::None) {
            let name = &sites[0].name;
            return Err(PredError::Syntax(if global {
                format!("`{name}` is outside the layers: address it as `<path>.{name}`")
            } else {
                format!("`{name}` is a layer site: address it as `<path>_layer[i].{name}`")
            }));
        }
        Ok((sites, layers))
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{expect, Expect};

    use super::*;

    /// The parsed check as its `Display` reads, or the error.
    fn check(prediction: &str, expected: Expect) {
        let got = match parse_prediction(prediction) {
            Ok(c) => c.to_string(),
            Err(PredError::Syntax(m)) => format!("syntax error: {m}"),
            Err(PredError::UnknownSite(s)) => format!("unknown site: {s}"),
        };
        // Always on lines of its own: the literal is then multi-line wherever it stands.
        expected.assert_eq(&format!("{got}\n"));
    }

    #[test]
    fn upstream_shapes() {
        check(
            "For each layer i ∈ [0, 28),\n  apr_layer[i].ffn_swigl_stats.std / gguf_layer[i].ffn_swigl_stats.std ∈ [0.5, 2.0]\n",
            expect![[r#"
                std(apr) / std(gguf) at ffn_swigl, layers [0, 28) ∈ [0.5, 2]
            "#]],
        );
        check(
            "apr_layer[3].ffn_gate_stats.std / gguf_layer[3].ffn_gate_stats.std ∈ [0.7, 1.4]",
            expect![[r#"
                std(apr) / std(gguf) at ffn_gate, layer 3 ∈ [0.7, 1.4]
            "#]],
        );
        check(
            "For each layer i ∈ [0, 28) and each ActivationStats slot s ∈\n{attn_norm, qkv, ffn_out}:\n\n  apr_layer[i].<s>_stats.count == gguf_layer[i].<s>_stats.count\n\nEither both stats reflect 7 × hidden_dim.\n",
            expect![[r#"
                count(apr) == count(gguf) at attn_norm, qkv = q ∪ k ∪ v, ffn_out = ffn_down, layers [0, 28)
            "#]],
        );
        check(
            "`pv validate x.yaml` exits 0",
            expect![[r#"
                not measurable: runs a command (`pv validate x.yaml`), not a quantity a report holds
            "#]],
        );
        check(
            "F32-native APR models still use F32 matmul.",
            expect![[r#"
                not measurable: prose about the upstream code base: it names no `<path>_layer[i].<site>` quantity
            "#]],
        );
    }

    #[test]
    fn own_shapes() {
        check(
            "For each layer i and each site s ∈ {q, k}: cosine(q8_layer[i].<s>, f32_layer[i].<s>) ≥ 0.999",
            expect![[r#"
                cosine(q8, f32) at q, k, every layer ≥ 0.999
            "#]],
        );
        // kl(reference, path) reads as KL(P_ref ‖ P_path): the path is the second argument.
        check(
            "kl(f32.logits, q8.logits) ≤ 0.01",
            expect![[r#"
                kl(q8, f32) on the logits ≤ 0.01
            "#]],
        );
        check(
            "top1_agree(q8.logits, f32.logits) == 1",
            expect![[r#"
                top1_agree(q8, f32) on the logits == 1
            "#]],
        );
        check(
            "For each layer i and each site s ∈ *: q8_layer[i].<s>_stats.nonfinite == 0",
            expect![[r#"
                nonfinite(q8) at attn_norm, q, k, v, attn_out, attn_proj, attn_post_norm, resid_attn, ffn_norm, ffn_gate, ffn_up, ffn_silu, ffn_swigl, ffn_down, ffn_post_norm, resid_ffn, every layer == 0
            "#]],
        );
        check(
            "q8.final_norm_stats.nonfinite == 0",
            expect![[r#"
                nonfinite(q8) at final_norm, outside the layers == 0
            "#]],
        );
        check(
            "rel_l2(q8.embed, f32.embed) ≤ 0.000001",
            expect![[r#"
                rel_l2(q8, f32) at embed, outside the layers ≤ 0.000001
            "#]],
        );
        check(
            "For each layer i ∈ [2, 4]: q8_layer[i].attn_out_stats.absmax < 100",
            expect![[r#"
                absmax(q8) at attn_out, layers [2, 5) < 100
            "#]],
        );
        // Prose that merely mentions a file name with a dot is not a quantity.
        check(
            "see notes.embed.md for details",
            expect![[r#"
                not measurable: prose about the upstream code base: it names no `<path>_layer[i].<site>` quantity
            "#]],
        );
    }

    #[test]
    fn malformed_predictions() {
        check(
            "apr_layer[i].ffn_swigl_stats.std / gguf_layer[i].ffn_swigl_stats.std ∈ [0.5, 2.0]",
            expect![[r#"
                syntax error: `[i]` is used but no `For each layer i …` quantifier defines it
            "#]],
        );
        check(
            "apr_layer[3].ffn_swigl_stats.std / gguf_layer[3].ffn_swigl_stats.std ∈ [2.0, 0.5]",
            expect![[r#"
                syntax error: the band [2, 0.5] is empty
            "#]],
        );
        check(
            "apr_layer[3].ffn_swigl_stats.std / gguf_layer[3].ffn_gate_stats.std ∈ [0.5, 2.0]",
            expect![[r#"
                syntax error: the two sides must address the same site of the same layer
            "#]],
        );
        check(
            "apr_layer[3].ffn_swigl_stats.sd / gguf_layer[3].ffn_swigl_stats.sd ∈ [0.5, 2.0]",
            expect![[r#"
                syntax error: unknown statistic `sd` (count, mean, std, min, max, absmax, nan, inf, nonfinite, zeros)
            "#]],
        );
        check(
            "apr_layer[3].ffn_swigl_stats.std / gguf_layer[3].ffn_swigl_stats.std ~ 1",
            expect![[r#"
                syntax error: expected a band (`∈ [lo, hi]`, `≤ x`, `≥ x`, `== x`) at `~ 1`
            "#]],
        );
        check(
            "q8_layer[3].logits_stats.nan == 0",
            expect![[r#"
                syntax error: `logits` is outside the layers: address it as `<path>.logits`
            "#]],
        );
        check(
            "q8.ffn_gate_stats.nan == 0",
            expect![[r#"
                syntax error: `ffn_gate` is a layer site: address it as `<path>_layer[i].ffn_gate`
            "#]],
        );
        check(
            "cosine(q8_layer[i].q, f32_layer[i].q) ≥ 0.9",
            expect![[r#"
                syntax error: `[i]` is used but no `For each layer i …` quantifier defines it
            "#]],
        );
        check(
            "apr_layer[3].ffn_swiggle_stats.std / gguf_layer[3].ffn_swiggle_stats.std ∈ [0.5, 2]",
            expect![[r#"
                unknown site: ffn_swiggle
            "#]],
        );
    }

    /// The contract parser knows every site of the table by its own name, in the right scope,
    /// and every upstream alias as the union the table's aliases name.
    #[test]
    fn every_site_of_the_table_parses() {
        use parallax_metrics::sites::{Scope, ALIASES, SITES};
        for s in &SITES {
            let p = match s.scope {
                Scope::Layer => format!("q8_layer[0].{}_stats.nan == 0", s.name),
                Scope::Global => format!("q8.{}_stats.nan == 0", s.name),
            };
            let c = parse_prediction(&p).unwrap_or_else(|e| panic!("{}: {e:?}", s.name));
            let Check::StatBand { sites, .. } = c else { panic!("{}: {c:?}", s.name) };
            assert_eq!(
                (sites[0].name.as_str(), &sites[0].sites[..]),
                (s.name, &[s.name.to_string()][..])
            );
        }
        for (alias, parts) in ALIASES {
            let c = parse_prediction(&format!("q8_layer[0].{alias}_stats.nan == 0")).unwrap();
            let Check::StatBand { sites, .. } = c else { panic!("{alias}: {c:?}") };
            assert_eq!(sites[0].sites, *parts);
        }
    }
}
