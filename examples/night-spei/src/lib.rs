//! Example tenant rule `night-high-value-spei`.
//!
//! Account-takeover fraud in Mexico concentrates at night, when the victim
//! is asleep: a high-value SPEI transfer between 23:00 and 06:00 Mexico City
//! time is worth a second look. The hour comes from the transaction's
//! `assessed_at_ms` (fixed by the host before the pipeline runs) shifted by
//! the configured UTC offset: Mexico City has no daylight saving time since
//! 2022, so a fixed offset (UTC−6) is exact.
use std::collections::BTreeMap;

use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Offset of the bank's local time from UTC, in minutes.
    pub utc_offset_minutes: i32,
    /// First local hour of the night window (0–23).
    pub night_start_hour: u32,
    /// Local hour the window ends (exclusive, 0–23).
    pub night_end_hour: u32,
    /// Currency → amount in major units from which a night SPEI counts.
    pub thresholds: BTreeMap<String, String>,
    pub weight: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            utc_offset_minutes: -360,
            night_start_hour: 23,
            night_end_hour: 6,
            thresholds: [("MXN".to_owned(), "50000.00".to_owned())].into(),
            weight: 30,
        }
    }
}

/// The rule.
pub struct NightSpei;

const CODE: &str = "payout_night_high_value_spei";

/// Local hour of a Unix-ms instant at a fixed offset.
pub fn local_hour(at_ms: i64, offset_minutes: i32) -> u32 {
    let local_minutes = at_ms.div_euclid(60_000) + i64::from(offset_minutes);
    (local_minutes.rem_euclid(24 * 60) / 60) as u32
}

impl Rule for NightSpei {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "night-high-value-spei",
            "high-value SPEI transfer at night, local time",
        )
        .flow(Flow::Payout)
        .signal(CODE, 30, "high-value SPEI transfer at night")
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        if params.night_start_hour > 23 || params.night_end_hour > 23 {
            return Err(RuleError::InvalidParams("hours are 0 to 23".into()));
        }
        let mut out = Evaluation::new();
        if tx.payout.channel != Some(Channel::Spei) {
            return Ok(out);
        }
        let Some(threshold) = params.thresholds.get(&tx.amount.currency) else {
            return Ok(out);
        };
        let limit = tx.amount.major_to_minor(threshold).ok_or_else(|| {
            RuleError::InvalidParams(format!("threshold `{threshold}` is not a valid amount"))
        })?;
        let hour = local_hour(tx.assessed_at_ms, params.utc_offset_minutes);
        let (start, end) = (params.night_start_hour, params.night_end_hour);
        let at_night = if start <= end {
            hour >= start && hour < end
        } else {
            hour >= start || hour < end
        };
        if at_night && tx.amount.minor >= limit {
            out.fire(
                CODE,
                params.weight,
                &format!(
                    "SPEI of at least {threshold} {} at {hour:02}h local time",
                    tx.amount.currency
                ),
            );
        }
        Ok(out)
    }
}

export_rule!(NightSpei);

#[cfg(test)]
mod tests {
    #[test]
    fn local_hour_in_mexico_city() {
        // 2026-11-22T05:30:00Z is 23:30 the day before in Mexico City.
        assert_eq!(super::local_hour(1_795_325_400_000, -360), 23);
    }
}
