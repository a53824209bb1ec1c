//! "Did you mean": the closest known name, by normalised Damerau–Levenshtein
//! similarity, case-insensitive exact matches first.

/// Names at least this similar are suggested.
const THRESHOLD: f64 = 0.6;

pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let mut best: Option<(&str, f64)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        if candidate.to_lowercase() == lower {
            return Some(candidate);
        }
        let score = strsim::normalized_damerau_levenshtein(&lower, &candidate.to_lowercase());
        // Short names are far apart after one edit; also accept one typo in them.
        let close = score >= THRESHOLD || strsim::damerau_levenshtein(&lower, &candidate.to_lowercase()) == 1;
        if close && best.is_none_or(|(_, s)| score > s) {
            best = Some((candidate, score));
        }
    }
    best.map(|(c, _)| c)
}

/// ` (did you mean `x`?)`-style help text, or `None`.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["batchnorm", "layernorm", "conv", "relu"];
        assert_eq!(closest("batchnrom", names), Some("batchnorm"));
        assert_eq!(closest("Conv", names), Some("conv"));
        assert_eq!(closest("rleu", names), Some("relu"));
        assert_eq!(closest("attention", names), None);
    }
}
