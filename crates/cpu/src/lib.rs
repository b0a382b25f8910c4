//! Which x86 vector instructions this process's kernels may use.
//!
//! Owns: detecting the CPU's AVX2 (with FMA and F16C), AVX-512F and AVX-512 VNNI once, and the
//! cap a caller sets below them (`parallax run --kernels`), so that every kernel family — the
//! quantized dots and f32 products of `parallax-quant`, the statistics lanes and exponentials of
//! `parallax-metrics` — chooses from one answer. Every family computes the same bits at every
//! level, so a run repeated on narrower kernels shows that its report does not depend on them,
//! and how much the wide ones buy.
//!
//! Knows nothing about kernels, formats or models. Off x86-64 nothing is detected: the wasm
//! builds choose their SIMD when they are compiled.

use std::sync::atomic::{AtomicU8, Ordering};

/// A width of vector instructions, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No x86 vector kernels: the scalar reference (and what the compiler makes of it).
    Scalar,
    /// AVX2 with FMA and F16C.
    Avx2,
    /// AVX-512F (and its VNNI where the CPU has it) over AVX2.
    Avx512,
}

impl Level {
    /// The name `--kernels` takes.
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }
}

/// The widest level the kernels may use; the widest there is until [`cap`] lowers it.
static CAP: AtomicU8 = AtomicU8::new(Level::Avx512 as u8);

/// From now on, use no instructions wider than `level` (process-wide: the kernels ask on every
/// call, so it is for the start of a process, before any work). `Err` names the widest level
/// this CPU has when it lacks `level`.
pub fn cap(level: Level) -> Result<(), String> {
    allowed(level, detected())?;
    CAP.store(level as u8, Ordering::Relaxed);
    Ok(())
}

/// Whether kernels of `level` run on a CPU whose widest are `widest`; `Err` says what it runs.
fn allowed(level: Level, widest: Level) -> Result<(), String> {
    match level > widest {
        true => Err(format!(
            "this CPU cannot run the {} kernels (the widest it runs are {})",
            level.name(),
            widest.name()
        )),
        false => Ok(()),
    }
}

/// The level the kernels run at: what the CPU has, under the cap.
pub fn level() -> Level {
    let cap = match CAP.load(Ordering::Relaxed) {
        0 => Level::Scalar,
        1 => Level::Avx2,
        _ => Level::Avx512,
    };
    cap.min(detected())
}

/// Whether the AVX2 kernels (with FMA and F16C) may run.
pub fn avx2() -> bool {
    level() >= Level::Avx2
}

/// Whether the AVX-512F kernels may run (the AVX2 ones then may too).
pub fn avx512() -> bool {
    level() >= Level::Avx512
}

/// Whether the AVX-512 VNNI kernels (with AVX-512VL's 256-bit forms) may run.
pub fn avx512_vnni() -> bool {
    avx512() && detected_vnni()
}

/// The widest level this CPU has, detected once.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static DETECTED: OnceLock<Level> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            match (avx2, is_x86_feature_detected!("avx512f")) {
                (true, true) => Level::Avx512,
                (true, false) => Level::Avx2,
                _ => Level::Scalar,
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Level::Scalar
    }
}

fn detected_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static VNNI: OnceLock<bool> = OnceLock::new();
        *VNNI.get_or_init(|| {
            is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test, as the cap is the process's: lowering it narrows every answer, a level the CPU
    /// lacks is refused with the widest it has, and raising it back gives the CPU's own.
    #[test]
    fn the_cap_narrows_every_answer_and_refuses_what_the_cpu_lacks() {
        let widest = detected();
        assert_eq!(level(), widest);
        cap(Level::Scalar).unwrap();
        assert_eq!(level(), Level::Scalar);
        assert!(!avx2() && !avx512() && !avx512_vnni());
        if widest >= Level::Avx2 {
            cap(Level::Avx2).unwrap();
            assert!(avx2() && !avx512() && !avx512_vnni());
        }
        if widest < Level::Avx512 {
            let e = cap(Level::Avx512).unwrap_err();
            assert!(e.contains(&format!("the widest it runs are {}", widest.name())), "{e}");
        }
        cap(widest).unwrap();
        assert_eq!(level(), widest);
        assert_eq!(avx512(), widest == Level::Avx512);
    }

    /// What `cap` answers on every CPU, not only this one: a level up to the CPU's widest is
    /// allowed, a wider one refused with a sentence naming both.
    #[test]
    fn a_level_wider_than_the_cpu_is_refused_by_name_on_every_cpu() {
        let levels = [Level::Scalar, Level::Avx2, Level::Avx512];
        for widest in levels {
            for level in levels {
                match allowed(level, widest) {
                    Ok(()) => assert!(level <= widest, "{level:?} on {widest:?}"),
                    Err(e) => {
                        assert!(level > widest, "{level:?} on {widest:?}: {e}");
                        assert_eq!(
                            e,
                            format!(
                                "this CPU cannot run the {} kernels (the widest it runs are {})",
                                level.name(),
                                widest.name()
                            )
                        );
                    }
                }
            }
        }
        assert!(allowed(Level::Avx512, Level::Avx2).unwrap_err().contains("avx512 kernels"));
        assert!(allowed(Level::Avx2, Level::Scalar).unwrap_err().contains("are scalar"));
    }
}
