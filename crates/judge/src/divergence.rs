//! The first divergence: where it is, and in replay mode whether the op alone already leaves
//! the band (root) or only the accumulated error does (propagated).

use parallax_report::verdict::{Cause, FirstDivergence, Measurement};
use parallax_report::Mode;

use crate::checks::metric_of;
use crate::contract::{Band, Check, Stat};
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
        let replay = self.report.mode == Mode::Replay;
        // The op alone (fed the reference's input), measured with the same metric.
        let local: Option<f64> = if !replay {
            None
        } else {
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
                format!("replayed alone on the reference's input, this op gives {x:.6}, already outside the band: the divergence starts here"),
            ),
            Some(x) => (
                Cause::Propagated,
                format!("replayed alone on the reference's input, this op gives {x:.6}, inside the band: the error arrives accumulated from earlier sites"),
            ),
            None if !replay => (
                Cause::Unknown,
                "run with --mode replay to tell whether this op starts the divergence or inherits it".to_string(),
            ),
            None => (
                Cause::Unknown,
                "no replayed (op-alone) comparison exists for this site and check; only matmul sites are replayed".to_string(),
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
