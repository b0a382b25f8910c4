//! What a split GGUF's file names say: `NAME-0000K-of-0000N.gguf` is shard K of N, as llama.cpp's
//! `gguf-split` and gguf-py name them. The CLI finds a shard's siblings beside it
//! ([`shard_file_names`]); the page, which cannot look beside a file, is given the files all at
//! once and must put them in order ([`order_chosen_files`]). Names only: whether the shards fit
//! together is checked from their headers when the model opens.

use std::fmt;

/// The file names of every shard of the split GGUF whose shard `name` is
/// (`NAME-0000K-of-0000N.gguf`, as llama.cpp's `gguf-split` and gguf-py name them), in order;
/// `None` for any other name.
pub fn shard_file_names(name: &str) -> Option<Vec<String>> {
    let shard = ShardName::parse(name)?;
    Some((1..=shard.count).map(|no| shard.sibling(no)).collect())
}

/// A file name of the form `PREFIX-0000K-of-0000N.gguf` with N > 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShardName<'a> {
    prefix: &'a str,
    /// K, as written (it may be out of 1..=N: [`ShardName::in_range`] says).
    no: u32,
    count: u32,
}

impl<'a> ShardName<'a> {
    fn parse(name: &'a str) -> Option<ShardName<'a>> {
        let stem = name.strip_suffix(".gguf")?;
        let (head, count) = stem.rsplit_once("-of-")?;
        let (prefix, no) = head.rsplit_once('-')?;
        let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(no) || !digits(count) {
            return None;
        }
        let (no, count) = (no.parse().ok()?, count.parse().ok()?);
        (count > 1).then_some(ShardName { prefix, no, count })
    }

    /// Whether the name is one of the N shards (not shard 0, nor shard 4 of 3).
    fn in_range(&self) -> bool {
        (1..=self.count).contains(&self.no)
    }

    /// The file name of shard `no` of the same split.
    fn sibling(&self, no: u32) -> String {
        format!("{}-{no:05}-of-{:05}.gguf", self.prefix, self.count)
    }
}

/// Why files chosen together (picked or dropped at once) do not make one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceError {
    /// The list was empty.
    NoFile,
    /// Some shards of one split GGUF were chosen, not all.
    MissingShards {
        /// The chosen files, in shard order.
        chosen: Vec<String>,
        /// Their shard numbers, in the same order.
        numbers: Vec<u32>,
        count: u32,
        /// The file names of the shards not chosen, in order.
        missing: Vec<String>,
    },
    /// The same shard twice (two files of one name, e.g. dropped from two folders).
    Duplicate { name: String },
    /// Shards of two split GGUFs (another name, or another shard count).
    TwoSplits { first: String, other: String },
    /// Several files, not all shards of a split GGUF: several models, or a model with others.
    NotOneModel { names: Vec<String> },
}

/// At most this many file names are listed in a sentence; the rest are counted.
const NAMES_LISTED: usize = 4;

/// `a, b, c, d and 5 more`.
fn listing(names: &[String]) -> String {
    if names.len() <= NAMES_LISTED {
        return names.join(", ");
    }
    format!("{} and {} more", names[..NAMES_LISTED].join(", "), names.len() - NAMES_LISTED)
}

impl fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChoiceError::NoFile => write!(f, "no file was chosen; choose a GGUF or APR file"),
            ChoiceError::MissingShards { chosen, numbers, count, missing } => {
                if let ([name], [no]) = (chosen.as_slice(), numbers.as_slice()) {
                    write!(f, "{name} is shard {no} of a split GGUF of {count} files")?;
                } else {
                    let numbers: Vec<String> = numbers.iter().map(u32::to_string).collect();
                    write!(
                        f,
                        "the {} files chosen are shards {} of a split GGUF of {count} files",
                        chosen.len(),
                        numbers.join(", ")
                    )?;
                }
                write!(f, "; choose all {count} at once (missing: {})", listing(missing))
            }
            ChoiceError::Duplicate { name } => {
                write!(f, "{name} was chosen twice; choose each shard of the model once")
            }
            ChoiceError::TwoSplits { first, other } => write!(
                f,
                "{first} and {other} are shards of two different split GGUFs; choose the shards of one model only"
            ),
            ChoiceError::NotOneModel { names } => write!(
                f,
                "{} files were chosen ({}), but a model is one file or the shards of one split GGUF \
                 (NAME-00001-of-0000N.gguf …); choose one model file, or all of its shards at once",
                names.len(),
                listing(names)
            ),
        }
    }
}

impl std::error::Error for ChoiceError {}

/// The order to read files chosen together (in a file picker, or dropped at once) as one model,
/// as indexes into `names`: one file as it is, or every shard of one split GGUF by shard
/// number, whatever order they came in. Anything else — one shard alone, some shards missing,
/// a shard twice, shards of two models, unrelated files — is a [`ChoiceError`] whose sentence
/// says what to choose instead.
pub fn order_chosen_files<S: AsRef<str>>(names: &[S]) -> Result<Vec<usize>, ChoiceError> {
    let owned = || names.iter().map(|n| n.as_ref().to_string()).collect::<Vec<_>>();
    let shards: Vec<Option<ShardName>> =
        names.iter().map(|n| ShardName::parse(n.as_ref()).filter(ShardName::in_range)).collect();
    let first = match shards.as_slice() {
        [] => return Err(ChoiceError::NoFile),
        // One file that names no shard opens as it is (a shard's own header may still say it
        // is one; the model's open then says so).
        [None] => return Ok(vec![0]),
        [Some(first), ..] => *first,
        [None, ..] => return Err(ChoiceError::NotOneModel { names: owned() }),
    };
    let mut by_number: Vec<Option<usize>> = vec![None; first.count as usize];
    for (i, shard) in shards.iter().enumerate() {
        let Some(shard) = shard else {
            return Err(ChoiceError::NotOneModel { names: owned() });
        };
        if (shard.prefix, shard.count) != (first.prefix, first.count) {
            return Err(ChoiceError::TwoSplits {
                first: names[0].as_ref().to_string(),
                other: names[i].as_ref().to_string(),
            });
        }
        let slot = &mut by_number[shard.no as usize - 1];
        if slot.is_some() {
            return Err(ChoiceError::Duplicate { name: names[i].as_ref().to_string() });
        }
        *slot = Some(i);
    }
    if by_number.iter().all(Option::is_some) {
        return Ok(by_number.into_iter().flatten().collect());
    }
    let (mut chosen, mut numbers, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for (no, slot) in (1..=first.count).zip(&by_number) {
        match slot {
            Some(i) => {
                chosen.push(names[*i].as_ref().to_string());
                numbers.push(no);
            }
            None => missing.push(first.sibling(no)),
        }
    }
    Err(ChoiceError::MissingShards { chosen, numbers, count: first.count, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_name_gives_every_shard_in_order_and_nothing_else_does() {
        let all = ["m-00001-of-00003.gguf", "m-00002-of-00003.gguf", "m-00003-of-00003.gguf"];
        assert_eq!(shard_file_names("m-00002-of-00003.gguf").unwrap(), all);
        assert_eq!(
            shard_file_names("a-b-00001-of-00002.gguf").unwrap()[1],
            "a-b-00002-of-00002.gguf"
        );
        for plain in [
            "m.gguf",
            "m-00001-of-00001.gguf",
            "m-1-of-3.gguf",
            "m-00001-of-00003.bin",
            "m-0000x-of-00003.gguf",
            "00001-of-00003.gguf",
        ] {
            assert_eq!(shard_file_names(plain), None, "{plain}");
        }
    }

    fn sentence(names: &[&str]) -> String {
        order_chosen_files(names).unwrap_err().to_string()
    }

    #[test]
    fn one_file_that_is_no_shard_opens_as_it_is() {
        for name in ["m.gguf", "m.apr", "m-00001-of-00001.gguf", "m-00000-of-00003.gguf", ""] {
            assert_eq!(order_chosen_files(&[name]), Ok(vec![0]), "{name}");
        }
    }

    #[test]
    fn every_shard_of_one_split_is_read_by_shard_number_whatever_the_order_chosen() {
        let names = ["m-00003-of-00003.gguf", "m-00001-of-00003.gguf", "m-00002-of-00003.gguf"];
        assert_eq!(order_chosen_files(&names), Ok(vec![1, 2, 0]));
        let names = vec!["a-b-00002-of-00002.gguf".to_string(), "a-b-00001-of-00002.gguf".into()];
        assert_eq!(order_chosen_files(&names), Ok(vec![1, 0]));
    }

    #[test]
    fn missing_shards_are_named_with_what_to_do() {
        assert_eq!(
            sentence(&["model-00001-of-00003.gguf"]),
            "model-00001-of-00003.gguf is shard 1 of a split GGUF of 3 files; choose all 3 at once \
             (missing: model-00002-of-00003.gguf, model-00003-of-00003.gguf)"
        );
        assert_eq!(
            sentence(&["m-00003-of-00003.gguf", "m-00001-of-00003.gguf"]),
            "the 2 files chosen are shards 1, 3 of a split GGUF of 3 files; choose all 3 at once \
             (missing: m-00002-of-00003.gguf)"
        );
        // A long list is cut short.
        assert_eq!(
            sentence(&["m-00002-of-00009.gguf"]),
            "m-00002-of-00009.gguf is shard 2 of a split GGUF of 9 files; choose all 9 at once \
             (missing: m-00001-of-00009.gguf, m-00003-of-00009.gguf, m-00004-of-00009.gguf, \
             m-00005-of-00009.gguf and 4 more)"
        );
    }

    #[test]
    fn duplicates_two_splits_and_unrelated_files_are_refused_with_a_sentence() {
        assert_eq!(
            order_chosen_files(&[
                "m-00001-of-00002.gguf",
                "m-00002-of-00002.gguf",
                "m-00001-of-00002.gguf"
            ]),
            Err(ChoiceError::Duplicate { name: "m-00001-of-00002.gguf".into() })
        );
        assert_eq!(
            sentence(&["m-00001-of-00002.gguf", "m-00001-of-00002.gguf"]),
            "m-00001-of-00002.gguf was chosen twice; choose each shard of the model once"
        );
        assert_eq!(
            sentence(&["a-00001-of-00002.gguf", "b-00002-of-00002.gguf"]),
            "a-00001-of-00002.gguf and b-00002-of-00002.gguf are shards of two different split \
             GGUFs; choose the shards of one model only"
        );
        // The same name split another way is another split.
        assert!(matches!(
            order_chosen_files(&["a-00001-of-00002.gguf", "a-00002-of-00003.gguf"]),
            Err(ChoiceError::TwoSplits { .. })
        ));
        assert_eq!(
            sentence(&["a.gguf", "b.apr"]),
            "2 files were chosen (a.gguf, b.apr), but a model is one file or the shards of one \
             split GGUF (NAME-00001-of-0000N.gguf …); choose one model file, or all of its shards \
             at once"
        );
        // A shard with a file that is none, in either order; a shard number out of its count.
        for names in [
            ["m-00001-of-00002.gguf", "m.gguf"],
            ["m.gguf", "m-00001-of-00002.gguf"],
            ["m-00001-of-00002.gguf", "m-00003-of-00002.gguf"],
        ] {
            assert!(
                matches!(order_chosen_files(&names), Err(ChoiceError::NotOneModel { .. })),
                "{names:?}"
            );
        }
        assert_eq!(order_chosen_files::<&str>(&[]), Err(ChoiceError::NoFile));
        assert_eq!(sentence(&[]), "no file was chosen; choose a GGUF or APR file");
    }
}
