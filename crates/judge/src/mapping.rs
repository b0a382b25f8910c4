//! How a contract's path names are read as a report's path ids.

/// How a contract's path names are read: upstream's `apr` is Parallax's `f32`, `gguf` is `q8`.
/// Names without an entry are taken as they are (Parallax's own contracts use `f32`, `q8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMapping {
    pairs: Vec<(String, String)>,
}

impl Default for PathMapping {
    fn default() -> Self {
        PathMapping { pairs: vec![("apr".into(), "f32".into()), ("gguf".into(), "q8".into())] }
    }
}

impl PathMapping {
    /// No renaming at all.
    pub fn identity() -> Self {
        PathMapping { pairs: Vec::new() }
    }

    /// Read `name` as `path` (replacing an earlier entry for `name`).
    pub fn with(mut self, name: &str, path: &str) -> Self {
        self.pairs.retain(|(n, _)| n != name);
        self.pairs.push((name.into(), path.into()));
        self
    }

    /// `apr=f32,gguf=llama` on top of the default mapping.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut m = PathMapping::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((a, b)) = part.split_once('=') else {
                return Err(format!("path mapping `{part}`: write NAME=PATH, e.g. apr=f32"));
            };
            let (a, b) = (a.trim(), b.trim());
            if a.is_empty() || b.is_empty() {
                return Err(format!("path mapping `{part}`: both sides need a name"));
            }
            m = m.with(a, b);
        }
        Ok(m)
    }

    pub fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        self.pairs.iter().find(|(n, _)| n == name).map_or(name, |(_, p)| p.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_parses_and_overrides() {
        let m = PathMapping::parse("gguf=llama").unwrap();
        assert_eq!((m.resolve("apr"), m.resolve("gguf"), m.resolve("q8")), ("f32", "llama", "q8"));
        assert!(PathMapping::parse("apr").is_err());
        assert!(PathMapping::parse("=x").is_err());
    }
}
