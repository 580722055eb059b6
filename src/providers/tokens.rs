//! Token counts. OpenAI and Azure model families get exact BPE counts (tiktoken; the encodings
//! are built into the binary, nothing is downloaded). Other models (Anthropic's tokenizer is not
//! public; local models have their own) get an estimate: one token per three characters,
//! rounded up, which over-counts Turkish and English prose slightly (safe for quotas).

/// Tokens of `text` for `model`: exact when tiktoken knows the model, else the estimate.
pub fn count(model: &str, text: &str) -> usize {
    match exact(model) {
        Some(bpe) => bpe.encode_ordinary(text).len(),
        None => estimate(text),
    }
}

/// Builds `model`'s encoding now, on a thread of its own, so that the first request that counts
/// tokens (its quota estimate, its capacity booking) does not wait for it: it takes a few
/// hundred milliseconds.
pub fn warm(model: &str) {
    let model = model.to_owned();
    let _ = std::thread::Builder::new()
        .name("tokens-warm".into())
        .spawn(move || {
            let _ = exact(&model);
        });
}

fn exact(model: &str) -> Option<&'static tiktoken_rs::CoreBPE> {
    tiktoken_rs::bpe_for_model(model).ok()
}

pub fn estimate(text: &str) -> usize {
    text.chars().count().div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_models_count_exactly_and_others_estimate() {
        // "hello world" is two tokens in every OpenAI encoding.
        assert_eq!(count("gpt-4o-mini", "hello world"), 2);
        assert_eq!(count("gpt-4", "hello world"), 2);
        assert!(exact("gpt-4o").is_some());
        assert!(exact("claude-3-5-haiku-latest").is_none());
        assert_eq!(count("claude-3-5-haiku-latest", "merhaba dünya"), 5);
        // Turkish costs more tokens than characters / 4 in o200k.
        let turkish = "Öğrencinin çözümündeki hatayı açıkla.";
        assert!(count("gpt-4o-mini", turkish) > turkish.chars().count() / 4);
    }
}
