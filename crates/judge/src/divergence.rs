//! The first divergence: where it is, and whether the op alone (fed the reference's input)
//! already leaves the band (root) or only the accumulated error does (propagated).

use parallax_report::verdict::{Cause, FirstDivergence, Measurement};

use crate::checks::metric_of;
use crate::contract::{Band, Check, Metric, Stat};
use crate::evaluate::{Judge, Point};

impl Judge<'_> {
    pub(crate) fn divergence(
        &self,
        id: &str,
        check: &Check,
        paths: &[&str],
        p: &Point,
        at: Measurement,
        band: &Band,
    ) -> FirstDivergence {
        if let Check::Compare { metric: Metric::NoiseRatio, .. } = check {
            let x = at.value.map_or("an unmeasurable".to_string(), |x| format!("{x:.1}×"));
            return FirstDivergence {
                contract: String::new(),
                test: id.into(),
                band: band.to_string(),
                cause: Cause::Root,
                local_value: at.value,
                explanation: format!(
                    "fed the reference's own input, this op alone is {x} the rounding noise its arithmetic predicts: the divergence starts here, in this op's kernel or weights"
                ),
                at,
            };
        }
        // The op alone (fed the reference's input), measured with the same metric.
        let local: Option<f64> = {
            match check {
                Check::Compare { metric, .. } => self
                    .compare(paths[0], paths[1], p, true)
                    .ok()
                    .and_then(|c| metric_of(&c, *metric)),
                Check::StatRatio { stat: Stat::Std, .. } => {
                    let r = &self.report.reference;
                    let (other, inverted) =
                        if paths[1] == r { (paths[0], false) } else { (paths[1], true) };
                    self.compare(other, r, p, true).ok().and_then(|c| c.std_ratio).map(|x| {
                        if inverted {
                            1.0 / x
                        } else {
                            x
                        }
                    })
                }
                _ => None,
            }
        };
        let (cause, explanation) = match local {
            Some(x) if !band.contains(x) => (
                Cause::Root,
                format!("fed the reference's input, this op alone gives {x:.6}, already outside the band: the divergence starts here"),
            ),
            Some(x) => (
                Cause::Propagated,
                format!("fed the reference's input, this op alone gives {x:.6}, inside the band: the error arrives accumulated from earlier sites"),
            ),
            None => (
                Cause::Unknown,
                "no op-alone comparison exists for this site and check: matmul sites are also fed the reference's input, other ops are not".to_string(),
            ),
        };
        FirstDivergence {
            contract: String::new(),
            test: id.into(),
            at,
            band: band.to_string(),
            cause,
            local_value: local,
            explanation,
        }
    }
}
