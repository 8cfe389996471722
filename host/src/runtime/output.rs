//! Validation of what a component returns. A rule's output is untrusted: it
//! must be small, well formed and consistent with the rule's own metadata.
use super::{Evaluation, Flow, RuleMetadata, SignalSpec, WitMetadata};

const MAX_SIGNALS: usize = 32;
const MAX_WARNINGS: usize = 32;
const MAX_TEXT: usize = 512;
const MAX_WEIGHT: u32 = 100;

/// Truncates guest-provided text for logs and error reasons.
pub(crate) fn clip(s: &str) -> String {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn is_code(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn is_rule_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub(super) fn check_metadata(meta: WitMetadata) -> Result<RuleMetadata, String> {
    if !is_rule_id(&meta.id) {
        return Err(format!("rule id `{}` is not kebab-case", clip(&meta.id)));
    }
    if meta.version.is_empty() || meta.version.len() > 64 {
        return Err("rule version is empty or too long".to_owned());
    }
    if meta.signals.len() > MAX_SIGNALS {
        return Err(format!("rule declares more than {MAX_SIGNALS} signals"));
    }
    let mut signals = Vec::with_capacity(meta.signals.len());
    for s in meta.signals {
        if !is_code(&s.code) {
            return Err(format!("signal code `{}` is not snake_case", clip(&s.code)));
        }
        signals.push(SignalSpec {
            code: s.code,
            default_weight: s.default_weight.min(MAX_WEIGHT),
            description: clip(&s.description),
        });
    }
    let default_params = match serde_json::from_str::<serde_json::Value>(&meta.default_params) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err("default params are not a JSON object".to_owned()),
    };
    Ok(RuleMetadata {
        id: meta.id,
        version: meta.version,
        description: clip(&meta.description),
        flows: meta
            .flows
            .iter()
            .map(|f| match f {
                Flow::Payout => "payout",
                Flow::Payin => "payin",
            })
            .collect(),
        signals,
        default_params,
    })
}

pub(super) fn check_evaluation(e: &Evaluation, meta: &RuleMetadata) -> Result<(), String> {
    if e.signals.len() > MAX_SIGNALS {
        return Err(format!(
            "output too large: {} signals (at most {MAX_SIGNALS})",
            e.signals.len()
        ));
    }
    if e.warnings.len() > MAX_WARNINGS {
        return Err(format!(
            "output too large: {} warnings (at most {MAX_WARNINGS})",
            e.warnings.len()
        ));
    }
    for s in &e.signals {
        if !meta.signals.iter().any(|d| d.code == s.code) {
            return Err(format!(
                "invalid output: signal `{}` is not declared in the rule's metadata",
                clip(&s.code)
            ));
        }
        if s.weight > MAX_WEIGHT {
            return Err(format!(
                "invalid output: weight {} of `{}` is above {MAX_WEIGHT}",
                s.weight, s.code
            ));
        }
        let reason_len = s.hard_block.as_ref().map_or(0, String::len);
        if s.description.len() > MAX_TEXT || reason_len > 128 {
            return Err(format!("output too large: text of `{}`", s.code));
        }
    }
    for w in &e.warnings {
        if w.field.len() > 128 || w.message.len() > MAX_TEXT {
            return Err("output too large: field warning text".to_owned());
        }
    }
    Ok(())
}
