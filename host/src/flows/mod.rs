//! The assess flows: each maps its wire input to the rule transaction, the
//! identifiers the context is prefetched for, its history key and the
//! fields echoed in the answer. The assess use case (`assess/`) is written
//! once over [`AssessFlow`]; a flow's name appears as a literal only here
//! and on the wire.
pub mod common;
pub mod payin;
pub mod payout;

use rust_decimal::Decimal;
use serde::{Serialize, de::DeserializeOwned};

use crate::{pipeline::FieldWarning, runtime::Transaction};

pub use common::Invalid;
pub use payin::Payin;
pub use payout::Payout;

/// Every flow's name, in the order they are listed.
pub const NAMES: &[&str] = &[Payout::NAME, Payin::NAME];

/// One assess flow.
pub trait AssessFlow: Send + Sync + 'static {
    /// The flow's name on the wire, in settings and in stored assessments.
    const NAME: &'static str;
    /// The idempotency scope of its assess endpoint.
    const IDEMPOTENCY_SCOPE: &'static str;
    /// Whether publishable keys may call its assess endpoint (§1: pay-in's
    /// only).
    const PUBLISHABLE_KEYS: bool = false;
    /// The validated input, stored with the assessment and read back by
    /// replay and backtest.
    type Input: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// Parses and validates a request body: the input and the field
    /// warnings validation produced.
    fn parse(body: &[u8], max_major: Decimal) -> Result<(Self::Input, Vec<FieldWarning>), Invalid>;
    /// Warnings about fields the calling tenant's segment (its
    /// `organization_type`) should send or need not send.
    fn segment_warnings(input: &Self::Input, segment: &str) -> Vec<FieldWarning> {
        let _ = (input, segment);
        Vec::new()
    }
    /// The exact amount in minor units and the currency code.
    fn minor_and_currency(input: &Self::Input) -> (u64, &str);
    /// The currency's minor-unit exponent.
    fn exponent(input: &Self::Input) -> u8;
    /// (list type, normalized value) pairs the blocklists are probed for.
    fn list_identifiers(input: &Self::Input) -> Vec<(String, String)>;
    /// (origin, counterparty) whose history the rules see, if any.
    fn history_key(input: &Self::Input) -> Option<(String, String)>;
    /// (entity, normalized value) pairs velocity is counted on, if any.
    fn velocity_keys(input: &Self::Input) -> Vec<(&'static str, String)> {
        let _ = input;
        Vec::new()
    }
    /// The rule transaction at `assessed_at_ms`.
    fn to_transaction(input: &Self::Input, assessed_at_ms: i64) -> Transaction;
    /// The bank's own id of the payment, echoed.
    fn payment_id(input: &Self::Input) -> Option<&str>;
    /// The idempotency key sent in the body.
    fn idempotency_key(input: &Self::Input) -> Option<&str>;
    /// A new session id.
    fn session_id(now_ms: i64) -> String;
    /// Transactions every rule of the flow can judge, that a pipeline
    /// configuration's params are tried on before it is stored.
    fn probe_transactions() -> Vec<Transaction>;
    /// The blocklist entries a fraud report of this input adds, scoped to
    /// this flow (§8): (list type, normalized value, severity).
    fn fraud_entries(input: &Self::Input) -> Vec<(&'static str, String, &'static str)>;
    /// What a case opened on this input knows about the operation.
    fn case_facts(input: &Self::Input) -> CaseFacts;
}

/// What a case (and its regulatory report) takes from an assessment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFacts {
    /// ISO country of the operation's origin, if known.
    pub country: Option<String>,
    /// The counterparty the operation went to or came from.
    pub counterparty_name: Option<String>,
    /// The counterparty's account (CLABE, IBAN, card BIN + last four).
    pub account: Option<String>,
    pub email: Option<String>,
    /// `spei`, `wire`, `card`, …
    pub channel: Option<String>,
    /// The bank's own id of the customer.
    pub customer_id: Option<String>,
}

/// A stored assessment's fraud-report entries and case facts (read from
/// its stored input); `None` for a flow this host does not know.
#[allow(clippy::type_complexity)]
pub fn stored_case_facts(
    flow: &str,
    input_json: &str,
) -> Option<Result<(Vec<(&'static str, String, &'static str)>, CaseFacts), serde_json::Error>> {
    fn read<F: AssessFlow>(
        input: &str,
    ) -> Result<(Vec<(&'static str, String, &'static str)>, CaseFacts), serde_json::Error> {
        let input: F::Input = serde_json::from_str(input)?;
        Ok((F::fraud_entries(&input), F::case_facts(&input)))
    }
    match flow {
        Payout::NAME => Some(read::<Payout>(input_json)),
        Payin::NAME => Some(read::<Payin>(input_json)),
        _ => None,
    }
}

/// The rule transaction of a stored assessment of flow `flow`, from its
/// stored input, at its `assessed_at_ms` (replay and backtest); `None` for
/// a flow this host does not know.
pub fn stored_transaction(
    flow: &str,
    input_json: &str,
    assessed_at_ms: i64,
) -> Option<Result<Transaction, serde_json::Error>> {
    fn read<F: AssessFlow>(input: &str, at: i64) -> Result<Transaction, serde_json::Error> {
        let input: F::Input = serde_json::from_str(input)?;
        Ok(F::to_transaction(&input, at))
    }
    match flow {
        Payout::NAME => Some(read::<Payout>(input_json, assessed_at_ms)),
        Payin::NAME => Some(read::<Payin>(input_json, assessed_at_ms)),
        _ => None,
    }
}
