//! What a vendor says of its own limits on every answer: OpenAI and Azure OpenAI in
//! `x-ratelimit-{limit,remaining}-{requests,tokens}`, Anthropic in
//! `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining}`. The
//! capacity ledger takes the limits over from the configured ones while they are fresh, and
//! never lets its own view of what is left exceed the vendor's.

use reqwest::header::HeaderMap;

/// One kind of limit as the vendor reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    /// Per minute.
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
}

/// Every kind of limit of one answer; kinds the vendor did not report are empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VendorLimits {
    pub requests: Reported,
    /// Input and output together (OpenAI's TPM, Anthropic's `tokens`).
    pub tokens: Reported,
    pub input_tokens: Reported,
    pub output_tokens: Reported,
}

impl VendorLimits {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?.trim();
    // Some servers send a float ("99.0").
    text.parse::<u64>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().map(|v| v.max(0.0) as u64))
}

/// OpenAI's and Azure OpenAI's headers; `None` when the answer carries none.
pub fn openai(headers: &HeaderMap) -> Option<VendorLimits> {
    let reported = |kind: &str| Reported {
        limit: number(headers, &format!("x-ratelimit-limit-{kind}")),
        remaining: number(headers, &format!("x-ratelimit-remaining-{kind}")),
    };
    let limits = VendorLimits {
        requests: reported("requests"),
        tokens: reported("tokens"),
        ..VendorLimits::default()
    };
    (!limits.is_empty()).then_some(limits)
}

/// Anthropic's headers; `None` when the answer carries none.
pub fn anthropic(headers: &HeaderMap) -> Option<VendorLimits> {
    let reported = |kind: &str| Reported {
        limit: number(headers, &format!("anthropic-ratelimit-{kind}-limit")),
        remaining: number(headers, &format!("anthropic-ratelimit-{kind}-remaining")),
    };
    let limits = VendorLimits {
        requests: reported("requests"),
        tokens: reported("tokens"),
        input_tokens: reported("input-tokens"),
        output_tokens: reported("output-tokens"),
    };
    (!limits.is_empty()).then_some(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn openai_headers_are_read() {
        let limits = openai(&headers(&[
            ("x-ratelimit-limit-requests", "5000"),
            ("x-ratelimit-limit-tokens", "160000"),
            ("x-ratelimit-remaining-requests", "4999"),
            ("x-ratelimit-remaining-tokens", "159976"),
            ("x-ratelimit-reset-requests", "12ms"),
            ("x-ratelimit-reset-tokens", "9ms"),
        ]))
        .unwrap();
        assert_eq!(
            limits.requests,
            Reported {
                limit: Some(5000),
                remaining: Some(4999)
            }
        );
        assert_eq!(limits.tokens.remaining, Some(159_976));
        assert_eq!(limits.input_tokens, Reported::default());
        assert!(openai(&HeaderMap::new()).is_none());
    }

    #[test]
    fn anthropic_headers_are_read() {
        let limits = anthropic(&headers(&[
            ("anthropic-ratelimit-requests-limit", "1000"),
            ("anthropic-ratelimit-requests-remaining", "999"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
            ("anthropic-ratelimit-input-tokens-limit", "80000"),
            ("anthropic-ratelimit-input-tokens-remaining", "80000"),
            ("anthropic-ratelimit-output-tokens-limit", "16000"),
            ("anthropic-ratelimit-output-tokens-remaining", "15000"),
            ("anthropic-ratelimit-tokens-limit", "96000"),
            ("anthropic-ratelimit-tokens-remaining", "95000"),
        ]))
        .unwrap();
        assert_eq!(limits.requests.remaining, Some(999));
        assert_eq!(limits.input_tokens.limit, Some(80_000));
        assert_eq!(limits.output_tokens.remaining, Some(15_000));
        assert_eq!(limits.tokens.limit, Some(96_000));
        assert!(anthropic(&headers(&[("x-ratelimit-limit-requests", "1")])).is_none());
    }
}
